import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  proxyActivities,
  TimeoutFailure,
  type ActivityOptions,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { Activities } from '../../activities';
import { AGENT_RUN_FAILURES } from './contract';

/**
 * The activities of an agent run, each with its options and the reason for them. Sandbox, tool and
 * model activities run on the task queue of the host that owns the container.
 */

/** How long a host's activity may wait for its worker: past it, the host is taken for gone. */
export const HOST_PICKUP_TIMEOUT = '1 minute';
/** How often a call is made again because the worker running it went away (a deploy, a crash). */
const MAX_WORKER_LOSSES = 20;

// No attempt limit: a state write (the final one above all) retries until PostgreSQL takes it.
export const records = proxyActivities<Pick<Activities, 'recordAgentState' | 'recordApproval'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

// Asking again is cheap and idempotent; under a burst the admission workflow's task may time out,
// and a long backoff would leave agents waiting long after it recovered.
export const admission = proxyActivities<Pick<Activities, 'requestSlot'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds' },
});

/** The activities that run on the sandbox's host, for a task that allows `maxRetries` retries. */
export function onHost(taskQueue: string, maxRetries: number) {
  // A host whose worker takes nothing within HOST_PICKUP_TIMEOUT is gone (schedule-to-start is not
  // retried); a cancelled activity is waited for, so teardown never races a launch or a tool.
  const onThisHost: ActivityOptions = {
    taskQueue,
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const sandbox = proxyActivities<Pick<Activities, 'launchSandbox' | 'collectResult' | 'removeSandboxContainer'>>({
    ...onThisHost,
    startToCloseTimeout: '20 minutes',
    heartbeatTimeout: '15 seconds',
    retry: {
      initialInterval: '1 second',
      maximumAttempts: maxRetries + 1,
      nonRetryableErrorTypes: [AGENT_RUN_FAILURES.sandboxFailed],
    },
  });
  // Tool calls are detached in the sandbox and re-attached by a retried attempt, so retrying is always
  // safe: they are retried for as long as the run lasts (a lasting fault ends with the deadline).
  const tools = proxyActivities<Pick<Activities, 'runTool'>>({
    ...onThisHost,
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '15 seconds',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: [AGENT_RUN_FAILURES.sandboxFailed],
    },
  });
  // Model calls stream and heartbeat with every event: the heartbeat timeout finds a dead worker, the
  // start-to-close timeout only bounds a runaway call. On the host, a kill's removal stops them at once.
  const model = proxyActivities<Pick<Activities, 'callModel'>>({
    taskQueue,
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '30 seconds',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: maxRetries + 1,
      nonRetryableErrorTypes: [
        AGENT_RUN_FAILURES.modelRequestRejected,
        AGENT_RUN_FAILURES.modelNotConfigured,
        AGENT_RUN_FAILURES.contextWindowExceeded,
      ],
    },
  });
  // Bounded in minutes whatever happens to the host: past that, the host's reconciler removes what is
  // left when it comes back, and the run still ends.
  const teardown = proxyActivities<Pick<Activities, 'teardownSandbox'>>({
    taskQueue,
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '15 seconds',
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    scheduleToCloseTimeout: '5 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
  });
  // The push runs where the repository cache holds the task's base; a refused push is an outcome, not a failure, so
  // only a worker or database fault is retried.
  const delivery = proxyActivities<Pick<Activities, 'deliverResult'>>({
    ...onThisHost,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
  });
  // Pausing and resuming are two quick engine calls, retried for as long as the engine is away (a restart): a
  // sandbox must not stay frozen, nor a waiting one run, because one call failed.
  const suspend = proxyActivities<Pick<Activities, 'pauseSandbox' | 'resumeSandbox'>>({
    ...onThisHost,
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
  });
  // Proxies answer any name and have no own keys: they are handed out as they are, never spread.
  return { sandbox, tools, model, teardown, delivery, suspend };
}

/** Whether an activity failed because its worker went away (a deploy's SIGTERM, or a crash its heartbeat found). */
const workerLost = (error: unknown): boolean =>
  error instanceof ActivityFailure &&
  ((error.cause instanceof ApplicationFailure && error.cause.type === AGENT_RUN_FAILURES.workerShutdown) ||
    (error.cause instanceof TimeoutFailure && error.cause.timeoutType === TimeoutType.HEARTBEAT));

/**
 * Makes an idempotent call again when its worker went away, without spending the task's retries: a
 * deploy is not the task's failure. The calls given here are idempotent (a stored model reply, a
 * launch that finds its container, a collect that ends the leftovers of the one before).
 */
export async function despiteWorkerLoss<T>(call: () => Promise<T>): Promise<T> {
  for (let losses = 0; ; losses++) {
    try {
      return await call();
    } catch (error) {
      if (losses >= MAX_WORKER_LOSSES || !workerLost(error) || isCancellation(error)) throw error;
    }
  }
}

/** Whether an activity failed because no worker of its host took it in time. */
export const hostUnreachable = (error: unknown): boolean =>
  error instanceof ActivityFailure &&
  error.cause instanceof TimeoutFailure &&
  error.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;

/** "host … unreachable" for an activity no worker of its host took in time; the failure's own words otherwise. */
export function describeFailure(error: unknown, hostQueue: string | null): string {
  if (hostUnreachable(error)) {
    const host = hostQueue?.replace(/^sandbox-host-/, '') ?? 'of the sandbox';
    return `host ${host} unreachable: its worker took no work within ${HOST_PICKUP_TIMEOUT}`;
  }
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? error.cause.message : error.message;
}
