import type { AgentState } from '../../shared/vocabulary';
import { FEDERATION_FAILURES } from '../federation-command/contract';
import type { Mirror } from './mirror';

/** How a federated spawn ends, and the words for each ending: pure. */

export type Outcome = { state: AgentState; detail: string; error?: string } | { continueAsNew: true };

/** The reason of the kill the hub sends itself when the task's deadline passed (not an operator's). */
export const DEADLINE_KILL_REASON = 'the task timed out';

/** An ApplicationFailure behind an activity's failure, as the workflow reads it. */
export interface Failure {
  type: string | null;
  message: string;
  details: unknown[];
}

export function spawnRefused(failure: Failure, peer: string): Outcome {
  const reasons: Record<string, string> = {
    [FEDERATION_FAILURES.commandRefused]: `${peer} refused the spawn: ${failure.message}`,
    [FEDERATION_FAILURES.replyNotVerified]: `${peer}'s reply to the spawn could not be trusted: ${failure.message}`,
    [FEDERATION_FAILURES.connectionInactive]: `nothing was sent: ${failure.message}`,
  };
  const error = reasons[failure.type ?? ''] ?? `the spawn failed: ${failure.message}`;
  return { state: 'failed', detail: 'spawn not delivered', error };
}

/** The connection is not ACTIVE: following pauses, and a disconnected one ends it. */
export function pause(mirror: Mirror, connection: string): Outcome | null {
  const { status } = mirror;
  const peer = status.remote.name;
  if (connection === 'DISCONNECTED') {
    const agent = `agent ${status.remoteAgentId ?? '?'} (last known state ${status.state})`;
    const error = `the connection to ${peer} was disconnected: the hub stopped following ${agent}`;
    return { state: 'failed', detail: 'connection disconnected', error };
  }
  status.following = 'paused';
  status.note = `the connection to ${peer} is ${connection}: following is paused until it is ACTIVE again`;
  return null;
}

/** The hub's deadline passed without a final state from the spoke: its own verdict. */
export function hubVerdict(mirror: Mirror, timeoutMs: number): Outcome {
  const { status } = mirror;
  const contact = `last contact ${status.lastContactAt ?? 'never'}`;
  if (status.kill !== null && status.kill.reason !== DEADLINE_KILL_REASON) {
    return {
      state: 'killed',
      detail: 'kill not confirmed',
      error: `${status.remote.name} did not confirm the kill before the deadline (${contact})`,
    };
  }
  const error = `no final state from ${status.remote.name} within the task's timeout of ${timeoutMs} ms (${contact})`;
  return { state: 'timed_out', detail: 'hub deadline', error };
}
