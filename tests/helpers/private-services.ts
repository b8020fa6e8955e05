import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdtemp, open, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { devServerDynamicConfigArgs, devServerSearchAttributeArgs } from '../../temporal/dev-server-args';
import { freePort } from './ports';
import { waitUntil } from './wait';
import { unmountAllUnder } from './workspace';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

/**
 * Services a chaos test owns alone, so it can stop and restart them without touching the run's
 * shared Temporal server and PostgreSQL that other test files use at the same time.
 */
export interface RestartableService {
  /** The address clients use: it stays the same across restarts. */
  readonly address: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops for good and removes its files. */
  destroy(): Promise<void>;
}

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

async function waitForPort(port: number, open: boolean, what: string): Promise<void> {
  await waitUntil(async () => (await answers(port)) === open, 60_000, 200);
  if ((await answers(port)) !== open) throw new Error(`${what} did not ${open ? 'come up' : 'stop'} on port ${port}`);
}

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );

/** A Temporal dev server of its own, whose state lives in a file: a restart keeps every workflow. */
export async function startPrivateTemporal(): Promise<RestartableService> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chaos-temporal-'));
  const port = await freePort();
  const cli = process.env.TEST_TEMPORAL_CLI ?? path.join(ROOT, '.tools/bin/temporal');
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(await freePort()),
    '--metrics-port',
    String(await freePort()),
    '--db-filename',
    path.join(dir, 'temporal.db'),
    '--log-level',
    'error',
    ...devServerSearchAttributeArgs(),
    ...devServerDynamicConfigArgs(),
  ];
  let child: ChildProcess | null = null;
  const service: RestartableService = {
    address: `127.0.0.1:${port}`,
    async start() {
      child = spawn(cli, args, { stdio: 'ignore' });
      await waitForPort(port, true, 'the private Temporal server');
    },
    async stop() {
      if (!child) return;
      child.kill('SIGKILL'); // as a crash would
      await exited(child);
      child = null;
      await waitForPort(port, false, 'the private Temporal server');
    },
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  return service;
}

/** The PostgreSQL binaries of the installed version (initdb and pg_ctl are not on PATH in Debian). */
async function postgresBin(): Promise<string> {
  const { stdout } = await run('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']);
  return stdout.trim();
}

/**
 * A PostgreSQL cluster of its own (initdb, pg_ctl) on its own port, run as the postgres user, with the project
 * migrated.
 */
export interface PrivatePostgres extends RestartableService {
  /** The project's database, migrated. */
  readonly databaseUrl: string;
  /** Another migrated database in the same cluster (for a second instance), by name. */
  newDatabase(name: string): Promise<string>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await postgresBin();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chaos-postgres-'));
  await chmod(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  const { uid, gid } = os.userInfo().uid === 0 ? await postgresIds() : { uid: -1, gid: -1 };
  if (uid !== -1) await chown(dir, uid, gid);
  const asPostgres = (command: string, args: string[]) =>
    uid !== -1 ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args);
  await asPostgres(path.join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const urlOf = (name: string): string => `postgresql://postgres@127.0.0.1:${port}/${name}`;
  const service: PrivatePostgres = {
    address: `127.0.0.1:${port}`,
    databaseUrl: urlOf('agent_orchestrator'),
    async newDatabase(name) {
      await run(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', name]);
      await run(path.join(ROOT, 'node_modules/.bin/prisma'), ['migrate', 'deploy'], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: urlOf(name), PRISMA_QUERY_ENGINE_LIBRARY: '/dev/null' },
      });
      return urlOf(name);
    },
    async start() {
      await asPostgres(path.join(bin, 'pg_ctl'), [
        '-D',
        dataDir,
        '-o',
        options,
        '-l',
        path.join(dir, 'log'),
        '-w',
        'start',
      ]);
    },
    async stop() {
      // Immediate mode: connections are dropped as in a crash (recovery runs on the next start).
      await asPostgres(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(
        () => undefined,
      );
    },
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  await service.newDatabase('agent_orchestrator');
  return service;
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    run('id', ['-u', 'postgres']),
    run('id', ['-g', 'postgres']),
  ]);
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * A Docker engine of its own (data, exec root and socket apart from the host's engine, the sandbox
 * image loaded from it), started with live-restore as scripts/lib/docker-engine.sh starts the
 * project's: a restart stops the daemon, not the sandboxes.
 */
export interface PrivateDocker extends RestartableService {
  readonly dockerHost: string;
  /** SIGSTOP: the engine takes requests and answers none, as a hung engine would; `thaw` lets it go on. */
  freeze(): void;
  thaw(): void;
}

export async function startPrivateDocker(image: string): Promise<PrivateDocker> {
  const id = randomUUID().slice(0, 8);
  const dataRoot = `/var/lib/docker-chaos-${id}`;
  const execRoot = `/run/docker-chaos-${id}`;
  const socket = `/run/docker-chaos-${id}.sock`;
  const dockerHost = `unix://${socket}`;
  const log = path.join(os.tmpdir(), `docker-chaos-${id}.log`);
  const args = ['--data-root', dataRoot, '--exec-root', execRoot, '--pidfile', `${execRoot}.pid`, '--host', dockerHost];
  const flags = ['--iptables=false', '--ip-masq=false', '--bridge=none', '--storage-driver=overlay2', '--live-restore'];
  const daemonAnswers = () =>
    run('docker', ['-H', dockerHost, 'info']).then(
      () => true,
      () => false,
    );
  let child: ChildProcess | null = null;
  const service: PrivateDocker = {
    address: socket,
    dockerHost,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    async start() {
      const out = await open(log, 'a');
      child = spawn('dockerd', [...args, ...flags], { stdio: ['ignore', out.fd, out.fd] });
      await out.close();
      await waitUntil(daemonAnswers, 60_000, 250);
      if (!(await daemonAnswers())) throw new Error(`the private Docker engine did not come up (log: ${log})`);
    },
    async stop() {
      if (!child) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM'); // as `systemctl restart docker` does
      await exited(child);
      child = null;
    },
    async destroy() {
      if (child)
        await run('sh', ['-c', `docker -H ${dockerHost} ps -aq | xargs -r docker -H ${dockerHost} rm -f`]).catch(
          () => undefined,
        );
      await service.stop();
      // Its containerd and shims outlive the daemon under live-restore; then nothing may stay mounted.
      await run('pkill', ['-KILL', '-f', execRoot]).catch(() => undefined);
      await unmountAllUnder(dataRoot);
      await unmountAllUnder(execRoot);
      await Promise.all(
        [dataRoot, execRoot, `${execRoot}.pid`, socket, log].map((file) => rm(file, { recursive: true, force: true })),
      );
    },
  };
  await service.start();
  await run('sh', ['-c', `docker save ${image} | docker -H ${dockerHost} load -q`], { maxBuffer: 1024 * 1024 });
  return service;
}
