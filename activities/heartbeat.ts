import { Context } from '@temporalio/activity';
import { isMissingRow, isUniqueViolation } from '../prisma/client';
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

/**
 * Runs an idempotent database write until PostgreSQL takes it, backing off to once every 5 s: a burst can hold every
 * connection for a while, and the work the write records (a started sandbox, a paid model reply) must not be given up
 * for it. Stops on the activity's cancellation, and where no retry would change the answer: a row that does not exist,
 * or one another attempt already wrote.
 */
export async function untilStored<T>(write: () => Promise<T>): Promise<T> {
  const context = Context.current();
  for (let waitMs = 100; ; waitMs = Math.min(waitMs * 2, 5_000)) {
    try {
      return await write();
    } catch (error) {
      if (context.cancellationSignal.aborted || isMissingRow(error) || isUniqueViolation(error)) throw error;
      context.log.warn('a database write failed; trying again', {
        error: error instanceof Error ? error.message : String(error),
        waitMs,
      });
      await context.sleep(waitMs);
    }
  }
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
