import { Context } from '@temporalio/activity';
import { AGENT_RUN_FAILURES } from '../workflows/agent-run/contract';

const HEARTBEAT_INTERVAL_MS = 5_000;

/**
 * Runs an activity's work while heartbeating every few seconds, so a dead worker is noticed within
 * the activity's heartbeat timeout and a cancellation (a kill) reaches the activity: the work reads
 * `Context.current().cancellationSignal` and passes it into git, Docker and HTTP calls.
 */
export async function whileHeartbeating<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  context.heartbeat();
  const timer = setInterval(() => context.heartbeat(), HEARTBEAT_INTERVAL_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Throws the cancellation (so the activity reports itself cancelled) once the workflow asked for it. */
export function stopIfCancelled(): void {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) throw signal.reason;
}

/** Whether this activity was cancelled because its worker is shutting down (a deploy), not by its workflow. */
export function cancelledByShutdown(): boolean {
  const context = Context.current();
  if (!context.cancellationSignal.aborted) return false;
  const reason: unknown = context.cancellationSignal.reason;
  return (
    context.cancellationDetails?.workerShutdown === true ||
    (reason instanceof Error && reason.message === 'WORKER_SHUTDOWN')
  );
}

/** An activity whose worker shut down under it (a deploy): retried on the next worker, never the task's fault. */
export const WORKER_SHUTDOWN_FAILURE = AGENT_RUN_FAILURES.workerShutdown;
