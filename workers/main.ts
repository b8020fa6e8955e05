import path from 'node:path';
import { DefaultLogger, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { loadConfig } from '../config/env';
import { createDockerClient } from '../platform/docker';
import { createLogger } from '../platform/logger';
import { runMain } from '../platform/main';
import { preflight } from '../platform/preflight';
import { createPrismaClient } from '../prisma/client';
import { ORCHESTRATOR_TASK_QUEUE } from '../shared/task-queues';
import { connectWorkerConnection } from '../temporal/connection';
import { createActivities } from '../activities';

/** The worker process: runs workflows and activities for this instance until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker', config.LOG_LEVEL);
  Runtime.install({ logger: new DefaultLogger(config.LOG_LEVEL.toUpperCase() as LogLevel) });
  await preflight(config);
  if (!config.ANTHROPIC_API_KEY) log.warn('ANTHROPIC_API_KEY is not set: agent runs will fail at their first model call');

  const prisma = createPrismaClient(config.DATABASE_URL);
  const connection = await connectWorkerConnection(config);
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities({
      prisma,
      docker: createDockerClient(config.DOCKER_HOST),
      sandboxImage: config.SANDBOX_IMAGE,
      workspacesDir: path.join(config.DATA_DIR, 'workspaces'),
    }),
  });
  log.info({ taskQueue: ORCHESTRATOR_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE }, 'worker started');
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM, which the SDK handles by draining the worker
  } finally {
    await Promise.allSettled([prisma.$disconnect(), connection.close()]);
    log.info('worker stopped');
  }
}

runMain('worker', main);
