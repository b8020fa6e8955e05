import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../api/auth';
import { callbackVerifier } from '../client/callback-receiver';
import { byTurn, byWorkItem, call, FakeAnthropic, reply } from '../scripts/scripted-model-server';
import { apiProcess, type ApiProcess } from '../tests/helpers/api-process';
import { CallbackReceiver } from '../tests/helpers/callback-receiver';
import { linkInstances, type Link } from '../tests/helpers/federation';
import { createRepository } from '../tests/helpers/git-repo';
import { startTestInstance, testConfig, type TestInstance } from '../tests/helpers/instance';
import { freePort } from '../tests/helpers/ports';
import {
  startPrivateDocker,
  startPrivatePostgres,
  startPrivateTemporal,
  type PrivateDocker,
  type PrivatePostgres,
  type RestartableService,
} from '../tests/helpers/private-services';
import { TcpProxy } from '../tests/helpers/tcp-proxy';
import { startTemporalOnPostgres } from '../tests/helpers/temporal-on-postgres';
import { workerProcess, type WorkerProcess } from '../tests/helpers/worker-process';

/** What the soak's agents do, by work item: a quick answer, a tool call that spans faults, edits and a check. */
export const WORK_ITEMS = ['answer at once', 'run a slow tool', 'edit and check'] as const;
export type WorkItem = (typeof WORK_ITEMS)[number];

const model = (toolSeconds: number): FakeAnthropic =>
  new FakeAnthropic(
    byWorkItem({
      'answer at once': byTurn([reply.text('Nothing to change.')]),
      'run a slow tool': byTurn([reply.toolUse(call.bash(`sleep ${toolSeconds}; echo slept`)), reply.text('Slept.')]),
      'edit and check': byTurn([
        reply.toolUse(call.create('notes.txt', 'soak\n')),
        reply.toolUse(call.bash('cat notes.txt && git status --short')),
        reply.text('Wrote notes.txt.'),
      ]),
    }),
  );

/** One instance: its own database, the API and two workers as processes, behind a proxy that can cut it off. */
export interface Side {
  readonly name: 'hub' | 'spoke';
  readonly instance: TestInstance;
  /** The API on loopback, not through the proxy (how the soak's clients call it). */
  readonly directUrl: string;
  readonly api: ApiProcess;
  readonly workers: WorkerProcess[];
  readonly proxy: TcpProxy;
}

export interface Topology {
  readonly temporal: RestartableService;
  readonly postgres: PrivatePostgres;
  readonly docker: PrivateDocker;
  readonly hub: Side;
  readonly spoke: Side;
  readonly link: Link;
  readonly model: FakeAnthropic;
  readonly receiver: CallbackReceiver;
  readonly audience: string;
  readonly repository: string;
  /** A token of the hub's workspace for its local agents and sessions (the link's hub token spawns on the spoke). */
  readonly hubToken: string;
  readonly logDir: string;
  /** Processes that exited on their own, by name ("hub worker-1"): each was started again, as a supervisor would. */
  crashes(): Record<string, number>;
  stop(): Promise<void>;
}

/** Starts again, every 2 s, each process that exited on its own (systemd or a restart policy would). */
function supervise(processes: Record<string, { crashed: boolean; start(): Promise<void> }>): () => void {
  const timer = setInterval(() => {
    for (const process of Object.values(processes)) if (process.crashed) void process.start().catch(() => undefined);
  }, 2_000);
  return () => clearInterval(timer);
}

export interface TopologySettings {
  logDir: string;
  /** Sandbox slots per host. */
  capacity: number;
  toolSeconds: number;
  /** Retention of events, transcripts and federation records, in hours (the soak checks the tables stay within it). */
  retentionHours: number;
  /** The dev server (state in a file) or a Temporal server on the same PostgreSQL cluster (as in docker-compose). */
  temporal: 'dev' | 'postgres';
}

async function startSide(
  name: Side['name'],
  services: { temporal: RestartableService; postgres: PrivatePostgres; docker: PrivateDocker },
  settings: TopologySettings & { modelUrl: string },
): Promise<Side> {
  const port = await freePort();
  const proxy = new TcpProxy(port);
  await proxy.start();
  const overrides = {
    DATABASE_URL: name === 'hub' ? services.postgres.databaseUrl : await services.postgres.newDatabase('spoke'),
    TEMPORAL_ADDRESS: services.temporal.address,
    DOCKER_HOST: services.docker.dockerHost,
    API_PORT: String(port),
    // What the peer calls and what signatures cover: the proxy, so the soak can cut the link.
    PUBLIC_URL: proxy.url,
    INSTANCE_NAME: `soak-${name}`,
    ANTHROPIC_API_KEY: `soak-${name}-key`,
    ANTHROPIC_BASE_URL: settings.modelUrl,
    MAX_CONCURRENT_AGENTS: String(settings.capacity),
    FEDERATION_POLL_INTERVAL: '5',
    EVENT_RETENTION_HOURS: String(settings.retentionHours),
    TRANSCRIPT_RETENTION_HOURS: String(settings.retentionHours),
    FEDERATION_RETENTION_HOURS: String(settings.retentionHours),
    WORKSPACE_RETENTION_HOURS: String(settings.retentionHours),
    RETENTION_INTERVAL_MINUTES: '1',
  };
  const instance = await startTestInstance(overrides, { worker: false, api: false });
  const output = (process: string): { logFile: string } => ({
    logFile: path.join(settings.logDir, `${name}-${process}.log`),
  });
  const api = apiProcess(instance.config, {}, output('api'));
  // Two workers on one host queue: a rolling restart always leaves one of them running.
  const workers = await Promise.all([1, 2].map((n) => workerProcess(instance.config, {}, output(`worker-${n}`))));
  await api.start();
  for (const worker of workers) await worker.start();
  return { name, instance, directUrl: `http://127.0.0.1:${port}`, api, workers, proxy };
}

/** Hub and spoke on a private Temporal server, PostgreSQL cluster and Docker engine, which the faults restart. */
export async function startTopology(settings: TopologySettings): Promise<Topology> {
  await mkdir(settings.logDir, { recursive: true });
  const fake = model(settings.toolSeconds);
  await fake.start();
  const [postgres, docker] = await Promise.all([
    startPrivatePostgres(),
    startPrivateDocker(testConfig().SANDBOX_IMAGE),
  ]);
  const temporal =
    settings.temporal === 'postgres' ? await startTemporalOnPostgres(postgres) : await startPrivateTemporal();
  const services = { temporal, postgres, docker };
  const hub = await startSide('hub', services, { ...settings, modelUrl: fake.url });
  const spoke = await startSide('spoke', services, { ...settings, modelUrl: fake.url });
  const link = await linkInstances(hub.instance, spoke.instance, spoke.proxy.url);
  const { token: hubToken } = await issueApiToken(hub.instance.prisma, `soak-sessions-${Date.now()}`);
  const audience = 'https://gateway.soak.test';
  // Tokens are issued by the hub's PUBLIC_URL; one verifier keeps the hub's keys once fetched (as a gateway would).
  const verify = callbackVerifier({ orchestratorUrl: hub.instance.baseUrl, audience });
  const receiver = new CallbackReceiver(() => verify);
  await receiver.start();
  const repository = await createRepository({ 'README.md': '# Soak\n' });
  const processes = Object.fromEntries(
    [hub, spoke].flatMap((side) => [
      [`${side.name} API`, side.api] as const,
      ...side.workers.map((worker, index) => [`${side.name} worker-${index + 1}`, worker] as const),
    ]),
  );
  const stopSupervising = supervise(processes);
  return {
    temporal,
    postgres,
    docker,
    hub,
    spoke,
    link,
    model: fake,
    receiver,
    audience,
    repository,
    hubToken,
    logDir: settings.logDir,
    crashes: () =>
      Object.fromEntries(
        Object.entries(processes).flatMap(([name, process]) => (process.crashes > 0 ? [[name, process.crashes]] : [])),
      ),
    async stop() {
      stopSupervising();
      for (const side of [hub, spoke]) {
        await Promise.all(side.workers.map((worker) => worker.stop('SIGKILL')));
        await side.api.stop('SIGKILL');
        await side.instance.stop();
        await side.proxy.stop();
      }
      await receiver.stop();
      await fake.stop();
      await docker.destroy();
      await temporal.destroy();
      await postgres.destroy();
    },
  };
}
