import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { createActivities } from '../../activities';
import { watchLiveSandboxes } from '../../activities/sandbox';
import { ensureRetentionSchedule } from '../../workers/jobs/retention-schedule';
import { retentionScheduleId } from '../../workflows/retention/contract';
import { activityDeps } from '../../workers/activity-deps';
import { createIdentityHolder, identitySettings, type IdentityHolder } from '../../federation/identity';
import { createTestDatabase } from './databases';
import { freePort } from './ports';
import { unmountAllUnder } from './workspace';
import { createApp, type ApiDeps } from '../../api/app';
import { createApiServer } from '../../api/http-server';
import {
  AGENT_EVENTS_CHANNEL,
  AGENT_PROGRESS_CHANNEL,
  AgentEventFeed,
  SESSION_EVENTS_CHANNEL,
} from '../../domain/agents/agent-event-feed';
import { startCallbackWakeups } from '../../domain/sessions/callback-wakeups';
import { startPgListener } from '../../platform/pg-listener';
import { loadConfig, type AppConfig } from '../../config/env';
import { createDockerClient } from '../../platform/docker';
import { startWorkerHostReports } from '../../platform/worker-hosts';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger, type Logger } from '../../platform/logger';
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from '../../platform/metrics';
import { observeActivities } from '../../workers/observed-activities';
import { createPrismaClient, type PrismaClient } from '../../prisma/client';
import { connectTemporalClient, connectWorkerConnection, createProbeConnection } from '../../temporal/connection';
import { createInstanceWorkers } from '../../temporal/instance-workers';

import { TEST_LOG_FILE } from './test-log';

export { TEST_LOG_FILE };

export interface TestInstance {
  config: AppConfig;
  identity: IdentityHolder;
  baseUrl: string;
  taskQueue: string;
  dataDir: string;
  temporal: Client;
  prisma: PrismaClient;
  docker: Docker;
  /** The worker's GET /metrics (its prom-client registry). */
  workerMetricsUrl: string;
  /** Every JSON log line the instance's API and worker wrote (all levels; LOG_LEVEL's also go to stdout). */
  logLines(): string[];
  stop(): Promise<void>;
}

/** A pino destination that keeps every line, beside the log file at the configured level. */
function capturedLogs(level: string): { destination: pino.DestinationStream; lines: string[] } {
  const lines: string[] = [];
  const memory = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const file = pino.destination({ dest: TEST_LOG_FILE, append: true, sync: false });
  return {
    destination: pino.multistream([
      { level, stream: file },
      { level: 'debug', stream: memory },
    ]),
    lines,
  };
}

/**
 * The in-process equivalent of workers/main.ts: a worker on the instance's task queue (workflows and
 * activities) and one on its host queue (sandbox activities). Returns a function that stops both.
 */
async function runWorker(
  config: AppConfig,
  deps: { prisma: PrismaClient; docker: Docker; identity: IdentityHolder; metrics: WorkerMetrics },
  temporal: Client,
  log: Logger,
): Promise<() => Promise<void>> {
  const connection = await connectWorkerConnection(config);
  const built = await activityDeps(config, { ...deps, log });
  const activities = createActivities(built);
  await watchLiveSandboxes(built);
  await ensureRetentionSchedule(temporal, config);
  const interceptors = { activity: [observeActivities(log, deps.metrics)] };
  const bundlePath = process.env.TEST_WORKFLOW_BUNDLE;
  const workflows = bundlePath
    ? { workflowBundle: { code: await readFile(bundlePath, 'utf8') } }
    : { workflowsPath: require.resolve('../../workflows') };
  const workers = await createInstanceWorkers(config, connection, temporal, log, {
    activities,
    interceptors,
    hostQueue: built.hostQueue,
    workflows,
  });
  const running = workers.run();
  const listener = startPgListener(config.DATABASE_URL, [SESSION_EVENTS_CHANNEL], log);
  const wakeups = startCallbackWakeups(listener, temporal, deps.prisma, log);
  const stopReports = startWorkerHostReports(
    deps.prisma,
    deps.docker,
    temporal,
    { hostId: config.HOST_ID, taskQueue: config.TASK_QUEUE, capacity: config.MAX_CONCURRENT_AGENTS },
    () => undefined,
  );
  built.warmPool?.start();
  return async () => {
    stopReports();
    wakeups.stop();
    await listener.close();
    built.quotaWatch?.stop();
    await built.warmPool?.stop();
    workers.shutdown();
    await running;
    await connection.close();
  };
}

/** The in-process equivalent of api/server.ts, on the instance's API_PORT. */
async function serveApi(
  config: AppConfig,
  deps: Omit<ApiDeps, 'settings' | 'feed'>,
): Promise<{ stop(): Promise<void> }> {
  const listener = startPgListener(config.DATABASE_URL, [AGENT_EVENTS_CHANNEL, AGENT_PROGRESS_CHANNEL], deps.log);
  const feed = new AgentEventFeed(listener, deps.prisma);
  await listener.ready();
  const app = createApp({ ...deps, settings: config, feed });
  const server: Server = await new Promise((resolve) => {
    const listening = createApiServer(app).listen(config.API_PORT, '127.0.0.1', () => resolve(listening));
  });
  return {
    async stop() {
      feed.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await listener.close();
    },
  };
}

/** The configuration a test instance gets: the run's Temporal server and database, a private data folder. */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  const { TEST_TEMPORAL_ADDRESS, TEST_DATABASE_URL } = process.env;
  if (!TEST_TEMPORAL_ADDRESS || !TEST_DATABASE_URL)
    throw new Error('global setup did not run (TEST_* variables missing)');
  return loadConfig({
    ...process.env,
    TEMPORAL_ADDRESS: TEST_TEMPORAL_ADDRESS,
    DATABASE_URL: TEST_DATABASE_URL,
    LOG_LEVEL: 'warn',
    // The instances of a test talk over loopback, which an instance refuses unless allowed, and agents clone test
    // repositories from the temp folder.
    OUTBOUND_ALLOWED_NETWORKS: 'loopback',
    REPOSITORY_LOCAL_ROOTS: realpathSync(os.tmpdir()),
    ...overrides,
  });
}

/**
 * One instance of the product wired to the real services, with a database of its own (unless
 * DATABASE_URL is given, as for an instance that restarts): the API on an ephemeral loopback port and
 * (unless `worker: false`, for tests that run the worker as a process) an in-process worker, on task
 * queues of its own, so test files running side by side never share work. `api: false` leaves the API to
 * a process the test starts on the instance's API_PORT.
 */
export async function startTestInstance(
  overrides: Record<string, string> = {},
  { worker: withWorker = true, api: withApi = true } = {},
): Promise<TestInstance> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'agent-orchestrator-test-'));
  // The address is chosen before the app exists: PUBLIC_URL (what signatures cover) must name it.
  const apiPort = overrides.API_PORT ?? String(await freePort());
  const config = testConfig({
    DATABASE_URL: overrides.DATABASE_URL ?? (await createTestDatabase()),
    DATA_DIR: dataDir,
    HOST_ID: `test-${randomUUID()}`,
    TASK_QUEUE: `test-${randomUUID()}`,
    API_PORT: apiPort,
    PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    INSTANCE_NAME: `test-instance-${apiPort}`,
    ...overrides,
  });
  const taskQueue = config.TASK_QUEUE;
  const logs = capturedLogs(config.LOG_LEVEL);
  const log = createLogger('test-api', 'debug', logs.destination);
  const workerLog = createLogger('test-worker', 'debug', logs.destination);
  const workerMetrics = createWorkerMetrics();
  const metricsServer = await serveMetrics(workerMetrics.registry, '127.0.0.1', 0);
  const temporal = await connectTemporalClient(config);
  const temporalProbe = createProbeConnection(config);
  const prisma = createPrismaClient(config.DATABASE_URL);
  const docker = createDockerClient(config.DOCKER_HOST);

  const identity = createIdentityHolder(identitySettings(config));
  const stopWorker = withWorker
    ? await runWorker(config, { prisma, docker, identity, metrics: workerMetrics }, temporal, workerLog)
    : () => Promise.resolve();

  const api = withApi ? await serveApi(config, { temporal, temporalProbe, prisma, identity, log }) : null;

  return {
    config,
    baseUrl: config.PUBLIC_URL,
    identity,
    taskQueue,
    dataDir,
    temporal,
    prisma,
    docker,
    workerMetricsUrl: `http://127.0.0.1:${metricsServer.port}/metrics`,
    logLines: () => [...logs.lines],
    async stop() {
      await api?.stop();
      await stopWorker();
      await temporal.schedule
        .getHandle(retentionScheduleId(config.TASK_QUEUE))
        .delete()
        .catch(() => undefined);
      await metricsServer.close();
      await Promise.allSettled([prisma.$disconnect(), temporal.connection.close(), temporalProbe.close()]);
      await unmountAllUnder(dataDir); // of agents the test left running: their teardown never came
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
