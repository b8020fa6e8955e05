import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type Docker from 'dockerode';
import { createActivities } from '../../activities';
import { createAnthropicClient } from '../../activities/model';
import { sandboxHostQueue } from '../../shared/task-queues';
import { createApp } from '../../api/app';
import { loadConfig, type AppConfig } from '../../config/env';
import { createDockerClient } from '../../platform/docker';
import { createLogger } from '../../platform/logger';
import { createPrismaClient, type PrismaClient } from '../../prisma/client';
import { connectTemporalClient, connectWorkerConnection, createProbeConnection } from '../../temporal/connection';

// The SDK's own logs are noise in test output unless something goes wrong.
Runtime.install({ logger: new DefaultLogger('WARN') });

export interface TestInstance {
  config: AppConfig;
  baseUrl: string;
  taskQueue: string;
  dataDir: string;
  temporal: Client;
  prisma: PrismaClient;
  docker: Docker;
  stop(): Promise<void>;
}

/** The configuration a test instance gets: the run's Temporal server and database, a private data folder. */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  const { TEST_TEMPORAL_ADDRESS, TEST_DATABASE_URL } = process.env;
  if (!TEST_TEMPORAL_ADDRESS || !TEST_DATABASE_URL) throw new Error('global setup did not run (TEST_* variables missing)');
  return loadConfig({
    ...process.env,
    TEMPORAL_ADDRESS: TEST_TEMPORAL_ADDRESS,
    DATABASE_URL: TEST_DATABASE_URL,
    LOG_LEVEL: 'warn',
    ...overrides,
  });
}

/**
 * One instance of the product wired to the real services: the API on an ephemeral loopback port and
 * a worker on a task queue of its own, so test files running side by side never share work.
 */
export async function startTestInstance(overrides: Record<string, string> = {}): Promise<TestInstance> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'agent-orchestrator-test-'));
  const config = testConfig({ DATA_DIR: dataDir, HOST_ID: `test-${randomUUID()}`, ...overrides });
  const taskQueue = `test-${randomUUID()}`;
  const hostQueue = sandboxHostQueue(config.HOST_ID);
  const log = createLogger('test-api', config.LOG_LEVEL);
  const temporal = await connectTemporalClient(config);
  const temporalProbe = createProbeConnection(config);
  const prisma = createPrismaClient(config.DATABASE_URL);
  const docker = createDockerClient(config.DOCKER_HOST);

  const bundlePath = process.env.TEST_WORKFLOW_BUNDLE;
  const workerConnection = await connectWorkerConnection(config);
  const activities = createActivities({
    prisma,
    docker,
    anthropic: createAnthropicClient(config.ANTHROPIC_API_KEY, config.ANTHROPIC_BASE_URL),
    sandboxImage: config.SANDBOX_IMAGE,
    workspacesDir: path.join(dataDir, 'workspaces'),
    hostQueue,
  });
  const worker = await Worker.create({
    connection: workerConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    ...(bundlePath ? { workflowBundle: { code: await readFile(bundlePath, 'utf8') } } : { workflowsPath: require.resolve('../../workflows') }),
    activities,
  });
  const hostWorker = await Worker.create({ connection: workerConnection, namespace: config.TEMPORAL_NAMESPACE, taskQueue: hostQueue, activities });
  const workerRun = Promise.all([worker.run(), hostWorker.run()]);

  const app = createApp({ temporal, temporalProbe, prisma, docker, namespace: config.TEMPORAL_NAMESPACE, taskQueue, log });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const { port } = server.address() as AddressInfo;

  return {
    config,
    baseUrl: `http://127.0.0.1:${port}`,
    taskQueue,
    dataDir,
    temporal,
    prisma,
    docker,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      worker.shutdown();
      hostWorker.shutdown();
      await workerRun;
      await Promise.allSettled([prisma.$disconnect(), temporal.connection.close(), temporalProbe.close(), workerConnection.close()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
