import path from 'node:path';
import { DefaultLogger, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createAnthropicClient } from '../activities/model';
import { loadConfig } from '../config/env';
import { createDockerClient } from '../platform/docker';
import { createLogger } from '../platform/logger';
import { runMain } from '../platform/main';
import { preflight } from '../platform/preflight';
import { createPrismaClient } from '../prisma/client';
import { sandboxHostQueue } from '../shared/task-queues';
import { connectTemporalClient, connectWorkerConnection } from '../temporal/connection';
import { instanceLabel, reconcileSandboxes } from '../activities/sandbox-reconciler';

const RECONCILE_INTERVAL_MS = 5 * 60 * 1000;

/**
 * The worker process: one Temporal worker on the orchestrator queue (workflows and host-independent
 * activities) and one on this host's sandbox queue, sharing one connection, until SIGINT/SIGTERM.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker', config.LOG_LEVEL);
  Runtime.install({ logger: new DefaultLogger(config.LOG_LEVEL.toUpperCase() as LogLevel) });
  await preflight(config);
  if (!config.ANTHROPIC_API_KEY) log.warn('ANTHROPIC_API_KEY is not set: agent runs will fail at their first model call');

  const prisma = createPrismaClient(config.DATABASE_URL);
  const connection = await connectWorkerConnection(config);
  const hostQueue = sandboxHostQueue(config.HOST_ID);
  const docker = createDockerClient(config.DOCKER_HOST);
  const instance = instanceLabel(config.TEMPORAL_NAMESPACE, config.TASK_QUEUE);
  const activities = createActivities({
    prisma,
    docker,
    instance,
    maxConcurrentAgents: config.MAX_CONCURRENT_AGENTS,
    anthropic: createAnthropicClient(config.ANTHROPIC_API_KEY, config.ANTHROPIC_BASE_URL),
    sandboxImage: config.SANDBOX_IMAGE,
    workspacesDir: path.join(config.DATA_DIR, 'workspaces'),
    hostQueue,
  });
  const orchestrator = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TASK_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    activities,
  });
  const host = await Worker.create({ connection, namespace: config.TEMPORAL_NAMESPACE, taskQueue: hostQueue, activities });
  log.info({ taskQueues: [config.TASK_QUEUE, hostQueue], namespace: config.TEMPORAL_NAMESPACE }, 'worker started');

  // Orphaned sandboxes (their workflow ended without teardown) are removed now and every few minutes.
  const temporal = await connectTemporalClient(config);
  const reconcile = async (): Promise<void> => {
    try {
      const { removed } = await reconcileSandboxes(docker, temporal, instance);
      if (removed.length > 0) log.info({ removed }, 'removed orphaned sandboxes');
    } catch (error) {
      log.warn({ err: error }, 'sandbox reconciliation failed; will retry');
    }
  };
  await reconcile();
  const reconciler = setInterval(() => void reconcile(), RECONCILE_INTERVAL_MS);
  try {
    // Both resolve after SIGINT/SIGTERM, which the SDK handles by draining.
    await Promise.all([orchestrator.run(), host.run()]);
  } finally {
    clearInterval(reconciler);
    await Promise.allSettled([prisma.$disconnect(), connection.close(), temporal.connection.close()]);
    log.info('worker stopped');
  }
}

runMain('worker', main);
