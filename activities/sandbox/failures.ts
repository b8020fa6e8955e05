import { ApplicationFailure } from '@temporalio/activity';
import { AGENT_RUN_FAILURES } from '../../workflows/agent-run/contract';

export const SANDBOX_FAILED = AGENT_RUN_FAILURES.sandboxFailed;

/**
 * Marks the failure of an activity whose container was removed under it: by a kill (or a teardown), never by the agent
 * itself.
 */
const SANDBOX_REMOVED = 'sandbox-removed';

/** The failure of an activity a kill stopped (its sandbox removed under it, its model call aborted). */
export const stoppedByKill = (message: string, type: string): ApplicationFailure =>
  ApplicationFailure.create({ message, type, nonRetryable: true, details: [SANDBOX_REMOVED] });

export const sandboxRemoved = (containerName: string): ApplicationFailure =>
  stoppedByKill(`the sandbox ${containerName} was removed`, SANDBOX_FAILED);

/**
 * Whether an activity ended because a kill stopped it (its sandbox removed under it): counted as cancelled, not failed.
 */
export const isSandboxRemoved = (error: unknown): boolean =>
  error instanceof ApplicationFailure && error.details?.[0] === SANDBOX_REMOVED;

export const quotaExceeded = (quotaMb: number): ApplicationFailure =>
  ApplicationFailure.nonRetryable(
    `the workspace went past its disk quota of ${quotaMb} MB: the run was stopped`,
    SANDBOX_FAILED,
  );
