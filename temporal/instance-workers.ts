import type { Client } from '@temporalio/client';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { AppConfig } from '../config/env';
import type { Logger } from '../platform/logger';
import { activitySlotsFor, WORKER_SHUTDOWN_GRACE_TIME } from './worker-settings';
import { deploymentVersionOf, promoteWhenNewer, workerDeploymentOptions } from './worker-deployment';

export interface InstanceWorkers {
  /** Runs both until shutdown (SIGINT/SIGTERM, or `shutdown`); promotes this version meanwhile. */
  run(): Promise<void>;
  shutdown(): void;
}

/**
 * An instance's two workers, as a versioned deployment: one on the instance's queue (workflows and
 * host-independent activities), one on this host's sandbox queue, sharing one connection.
 */
export async function createInstanceWorkers(
  config: AppConfig,
  connection: NativeConnection,
  client: Client,
  log: Logger,
  parts: Pick<WorkerOptions, 'activities' | 'interceptors'> & {
    hostQueue: string;
    workflows: Pick<WorkerOptions, 'workflowsPath' | 'workflowBundle'>;
  },
): Promise<InstanceWorkers> {
  const common: Omit<WorkerOptions, 'taskQueue'> = {
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    activities: parts.activities,
    interceptors: parts.interceptors,
    shutdownGraceTime: WORKER_SHUTDOWN_GRACE_TIME,
    maxConcurrentActivityTaskExecutions: activitySlotsFor(config.MAX_CONCURRENT_AGENTS),
    workerDeploymentOptions: workerDeploymentOptions(config),
  };
  const orchestrator = await Worker.create({ ...common, ...parts.workflows, taskQueue: config.TASK_QUEUE });
  const host = await Worker.create({ ...common, taskQueue: parts.hostQueue });
  const stopPromoting = new AbortController();
  const version = deploymentVersionOf(config);
  const promote = async (): Promise<void> => {
    if (config.WORKER_PROMOTE !== 'newer') return;
    let told = false;
    const onRetry = (error: unknown): void => {
      if (!told) log.info({ err: error, ...version }, 'this version is not current yet; trying again');
      told = true;
    };
    const outcome = await promoteWhenNewer(client, config, { signal: stopPromoting.signal, onRetry });
    log.info(
      { ...version },
      outcome === 'promoted' ? 'this worker version is now current' : 'kept the current worker version',
    );
  };
  return {
    async run() {
      // Polling registers the version with the server; only then can it become current.
      const running = Promise.all([orchestrator.run(), host.run()]);
      const promoting = promote().catch((error: unknown) =>
        log.warn({ err: error }, 'could not make this worker version current'),
      );
      try {
        await running;
      } finally {
        stopPromoting.abort();
        await promoting;
      }
    },
    shutdown() {
      stopPromoting.abort();
      orchestrator.shutdown();
      host.shutdown();
    },
  };
}
