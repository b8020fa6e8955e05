import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { searchAttributeNamesAndTypes } from '../../temporal/dev-server-args';
import { freePort } from './ports';
import type { RestartableService } from './private-services';
import { waitUntil } from './wait';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const SERVER = path.join(ROOT, '.tools/bin/temporal-server');
const SQL_TOOL = path.join(ROOT, '.tools/bin/temporal-sql-tool');
const CLI = process.env.TEST_TEMPORAL_CLI ?? path.join(ROOT, '.tools/bin/temporal');
const ENV = 'postgres'; // the server reads its config from <config dir>/<env>.yaml

/** Builds the binaries when missing (minutes, once); answers the schema directory of the module they come from. */
async function schemaDir(): Promise<string> {
  const script = 'source scripts/lib/temporal-server.sh && build_temporal_server';
  return (await run('bash', ['-c', script], { cwd: ROOT, timeout: 30 * 60_000 })).stdout.trim();
}

/** Creates `database` and brings it to the newest schema version, as temporalio/auto-setup does. */
async function setUpDatabase(address: string, database: string, versioned: string): Promise<void> {
  const [host = '', port = ''] = address.split(':');
  const connection = ['--plugin', 'postgres12', '--ep', host, '-p', port, '-u', 'postgres', '--db', database];
  for (const command of [['create-database'], ['setup-schema', '-v', '0.0'], ['update-schema', '-d', versioned]]) {
    await run(SQL_TOOL, [...connection, ...command]);
  }
}

/**
 * A free loopback port below 32768: the membership table keeps each service's membership port in a
 * SMALLINT column, and the ports the kernel hands out (freePort) are all above it.
 */
async function freeLowPort(): Promise<number> {
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    const server = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

const gone = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;
const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (gone(child) ? resolve() : child.once('exit', () => resolve())));

/**
 * A Temporal server of its own on PostgreSQL, as docker-compose.yml runs it (not the dev server on
 * SQLite), for tests of what a real cluster does differently. Its state lives in `postgres`, so a
 * restart keeps every workflow, and stopping `postgres` under it is how a test takes its database away.
 */
export async function startTemporalOnPostgres(postgres: { address: string }): Promise<RestartableService> {
  const schema = await schemaDir();
  await setUpDatabase(postgres.address, 'temporal', path.join(schema, 'temporal/versioned'));
  await setUpDatabase(postgres.address, 'temporal_visibility', path.join(schema, 'visibility/versioned'));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'temporal-on-postgres-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // Chosen once: a restarted server must be found where the membership table and clients say it is.
  const rpc = async (grpcPort?: number) => ({
    grpcPort: grpcPort ?? (await freePort()),
    membershipPort: await freeLowPort(),
    bindOnLocalHost: true,
  });
  // connectProtocol means nothing to PostgreSQL's plugin, but the config is refused without it.
  const sql = { pluginName: 'postgres12', connectAddr: postgres.address, connectProtocol: 'tcp', user: 'postgres' };
  const store = (databaseName: string) => ({ sql: { ...sql, databaseName } });
  const config = {
    // To a file: the server logs at length, and a test's output should stay readable.
    log: { stdout: false, level: 'warn', outputFile: path.join(dir, 'temporal.log') },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: 4,
      datastores: { default: store('temporal'), visibility: store('temporal_visibility') },
    },
    global: { membership: { broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: { rpc: { ...(await rpc(port)), httpPort: await freePort() } },
      history: { rpc: await rpc() },
      matching: { rpc: await rpc() },
      worker: { rpc: await rpc() },
    },
    clusterMetadata: {
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: address },
      },
    },
    // The settings docker-compose.yml's server gets (history.maxInFlightUpdates for admission's bursts).
    dynamicConfigClient: { filepath: path.join(ROOT, 'temporal/dynamicconfig.yaml'), pollInterval: '10s' },
  };
  await writeFile(path.join(dir, `${ENV}.yaml`), stringify(config));

  const temporal = (...args: string[]) => run(CLI, [...args, '--address', address], { timeout: 15_000 });
  const healthy = () =>
    temporal('operator', 'cluster', 'health').then(
      ({ stdout }) => stdout.includes('SERVING'),
      () => false,
    );
  let child: ChildProcess | null = null;
  const service: RestartableService = {
    address,
    async start() {
      // Its own output (config loading, a panic) goes to a file too: the log file misses it.
      const out = await open(path.join(dir, 'server.out'), 'a');
      const server = spawn(SERVER, ['--root', dir, '--config', '.', '--env', ENV, '--allow-no-auth', 'start'], {
        stdio: ['ignore', out.fd, out.fd],
      });
      child = server;
      await out.close();
      await waitUntil(async () => gone(server) || (await healthy()), 120_000, 500);
      if (!gone(server) && (await healthy())) return;
      server.kill('SIGKILL');
      child = null;
      // The log says why (a fatal error); a config the server could not read, only its output.
      const log = (name: string) => readFile(path.join(dir, name), 'utf8').catch(() => '');
      const tail = ((await log('temporal.log')) || (await log('server.out'))).slice(-1500);
      throw new Error(`the Temporal server on PostgreSQL did not come up at ${address} (logs in ${dir}):\n${tail}`);
    },
    async stop() {
      if (!child) return;
      const server = child;
      child = null;
      server.kill('SIGTERM'); // as `docker compose restart` does
      // A graceful shutdown that hangs would hang the test: after a minute it ends as a crash would.
      const timer = setTimeout(() => server.kill('SIGKILL'), 60_000);
      await exited(server);
      clearTimeout(timer);
    },
    async destroy() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await service.start();
  try {
    await register(temporal);
    // Each service reads namespaces (the search attributes' mapping with them) when it starts, then
    // every 10 s: until then a workflow started with them is refused. A restart makes them known at once.
    await service.stop();
    await service.start();
  } catch (error) {
    await service.destroy();
    throw error;
  }
  return service;
}

/**
 * What temporalio/auto-setup and docker-compose.yml's temporal-setup do. Right after a first start the
 * frontend answers before history owns its shards, so each call is retried until it is accepted; one
 * that timed out after the server did the work is answered "already exists" the next time.
 */
async function register(temporal: (...args: string[]) => Promise<unknown>): Promise<void> {
  const retried = async (what: string, args: string[]) => {
    const outcome = { done: false, failure: '' };
    const accepted = (error: unknown) => {
      outcome.failure = error instanceof Error ? error.message : String(error);
      return outcome.failure.includes('already exists');
    };
    await waitUntil(async () => (outcome.done = await temporal(...args).then(() => true, accepted)), 60_000, 1000);
    if (!outcome.done) throw new Error(`${what} failed: ${outcome.failure}`);
  };
  const create = ['create', '--namespace', 'default'];
  await retried('creating the default namespace', ['operator', 'namespace', ...create, '--retention', '1d']);
  const attributes = searchAttributeNamesAndTypes().flatMap(([name, type]) => ['--name', name, '--type', type]);
  await retried('registering search attributes', ['operator', 'search-attribute', ...create, ...attributes]);
}
