import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { cancelledByShutdown, WORKER_SHUTDOWN_FAILURE } from '../activities/heartbeat';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Logger } from '../platform/logger';
import { isSandboxRemoved } from '../activities/sandbox';
import type { WorkerMetrics } from '../platform/metrics';

/** The ids an activity's input carries that tie its log lines to an agent or a federation message. */
export function correlationIds(input: unknown): { agentId?: string; messageId?: string } {
  if (typeof input !== 'object' || input === null) return {};
  const fields = input as Record<string, unknown>;
  const ids: { agentId?: string; messageId?: string } = {};
  if (typeof fields.agentId === 'string') ids.agentId = fields.agentId;
  if (typeof fields.messageId === 'string') ids.messageId = fields.messageId;
  else if (typeof fields.eventId === 'string') ids.messageId = fields.eventId;
  return ids;
}

/**
 * Every activity attempt ends with one JSON log line (activity type, workflowId, runId, attempt,
 * agentId and messageId where the input has them, duration, outcome) and one observation of
 * orchestrator_activity_duration_seconds.
 */
export function observeActivities(log: Logger, metrics: WorkerMetrics): ActivityInterceptorsFactory {
  return (context) => ({
    inbound: {
      async execute(input, next) {
        const { info } = context;
        const fields = {
          activity: info.activityType,
          workflowId: info.workflowExecution?.workflowId,
          runId: info.workflowExecution?.runId,
          attempt: info.attempt,
          ...correlationIds(input.args[0]),
        };
        const started = performance.now();
        const seconds = (): number => (performance.now() - started) / 1000;
        try {
          const result = await next(input);
          const duration = seconds();
          metrics.activities.observe({ activity: info.activityType, outcome: 'completed' }, duration);
          log.info({ ...fields, durationMs: Math.round(duration * 1000) }, 'activity completed');
          return result;
        } catch (error) {
          const duration = seconds();
          // A worker that shuts down (a deploy) interrupts its activities: retried on the next worker, never the task's
          // failure.
          if (
            cancelledByShutdown() &&
            !(error instanceof ApplicationFailure && error.type === WORKER_SHUTDOWN_FAILURE)
          ) {
            metrics.activities.observe({ activity: info.activityType, outcome: 'interrupted' }, duration);
            log.info(
              { ...fields, durationMs: Math.round(duration * 1000) },
              'activity interrupted by the worker shutting down',
            );
            throw ApplicationFailure.retryable(
              `the worker shut down during ${info.activityType}`,
              WORKER_SHUTDOWN_FAILURE,
            );
          }
          // A cancelled activity may end with whatever its aborted work threw, or find its sandbox removed by the kill
          // first.
          const outcome = cancelledByShutdown()
            ? 'interrupted'
            : error instanceof CancelledFailure || context.cancellationSignal.aborted || isSandboxRemoved(error)
              ? 'cancelled'
              : 'failed';
          metrics.activities.observe({ activity: info.activityType, outcome }, duration);
          log.warn(
            {
              ...fields,
              durationMs: Math.round(duration * 1000),
              outcome,
              error: error instanceof Error ? error.message : String(error),
            },
            `activity ${outcome}`,
          );
          throw error;
        }
      },
    },
  });
}
