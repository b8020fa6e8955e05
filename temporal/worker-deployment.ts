import type { Client } from '@temporalio/client';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import type { AppConfig } from '../config/env';
import { ADMISSION_WORKFLOW } from '../workflows/admission/contract';
import { HUB_EVENT_DELIVERY_WORKFLOW } from '../workflows/hub-event-delivery/contract';
import { SESSION_CALLBACKS_WORKFLOW } from '../workflows/session-callbacks/contract';

/**
 * Worker Deployment Versioning: every worker polls as version `<deployment>@<build id>` (the
 * deployment is named after the instance's task queue, the build id is the release, e.g. v0.3.0). Agent
 * runs are pinned to the version that started them (a deploy never replays a run on code it did not
 * start with); the long-lived loops (admission, event and callback delivery) move to the newest
 * version (see setWorkflowOptions in their workflow.ts). docs/operations.md has the upgrade steps.
 */

/**
 * The workflows that move to the newest version while they run (each says so with setWorkflowOptions): every history
 * of theirs, from any release, must replay on today's code. Every other workflow is pinned to the version that started
 * it and ends there.
 */
export const AUTO_UPGRADE_WORKFLOWS: readonly string[] = [
  ADMISSION_WORKFLOW,
  HUB_EVENT_DELIVERY_WORKFLOW,
  SESSION_CALLBACKS_WORKFLOW,
];

export interface DeploymentVersion {
  deploymentName: string;
  buildId: string;
}

export const deploymentVersionOf = (config: AppConfig): DeploymentVersion => ({
  deploymentName: config.WORKER_DEPLOYMENT_NAME ?? config.TASK_QUEUE,
  buildId: config.WORKER_BUILD_ID,
});

export const workerDeploymentOptions = (config: AppConfig): WorkerDeploymentOptions => ({
  version: deploymentVersionOf(config),
  useWorkerVersioning: true,
  defaultVersioningBehavior: 'PINNED',
});

/** 1.2.3 or v1.2.3 as comparable numbers; null for any other build id. */
function release(buildId: string): number[] | null {
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(buildId);
  return match ? match.slice(1).map(Number) : null;
}

/** Whether `ours` should replace `current`: none yet, or both are releases and ours is later. */
export function isNewer(ours: string, current: string | null): boolean {
  if (current === null || current === '') return true;
  const [a, b] = [release(ours), release(current)];
  if (!a || !b) return false;
  for (let index = 0; index < 3; index++) {
    const [x = 0, y = 0] = [a[index], b[index]];
    if (x !== y) return x > y;
  }
  return false;
}

const GRPC_NOT_FOUND = 5;
const grpcCode = (error: unknown): number | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number'
    ? error.code
    : undefined;

/** The build id new workflows go to now, or null when the deployment has no current version (or does not exist). */
export async function currentBuildId(
  client: Client,
  namespace: string,
  deploymentName: string,
): Promise<string | null> {
  try {
    const { workerDeploymentInfo } = await client.workflowService.describeWorkerDeployment({
      namespace,
      deploymentName,
    });
    return workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId ?? null;
  } catch (error) {
    if (grpcCode(error) === GRPC_NOT_FOUND) return null;
    throw error;
  }
}

/**
 * Makes this worker's version the current one when the deployment has none or an older release, so
 * new agents start on it; a restarted older worker never takes it back. The server accepts it only
 * once a worker of this version polls every task queue the current version has (each host's
 * queue): until then it is tried again, so a rolling upgrade switches when the last host is new.
 */
export async function promoteWhenNewer(
  client: Client,
  config: AppConfig,
  options: { retryMs?: number; signal?: AbortSignal; onRetry?: (error: unknown) => void } = {},
): Promise<'promoted' | 'kept'> {
  const { deploymentName, buildId } = deploymentVersionOf(config);
  const namespace = config.TEMPORAL_NAMESPACE;
  // Backs off to once every 30 s: a host that never runs the new version must not turn this into a poll.
  for (let tries = 0; ; tries++) {
    try {
      if (!isNewer(buildId, await currentBuildId(client, namespace, deploymentName))) return 'kept';
      await client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName,
        buildId,
        identity: client.options.identity,
      });
      return 'promoted';
    } catch (error) {
      options.onRetry?.(error);
    }
    if (options.signal?.aborted) return 'kept';
    const delayMs = Math.min((options.retryMs ?? 1000) * 2 ** Math.min(tries, 10), 30_000);
    // A shutdown ends the wait at once: the worker's stop awaits this loop.
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, delayMs);
      options.signal?.addEventListener('abort', wake);
    });
  }
}
