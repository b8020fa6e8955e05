import { condition, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import { AGENT_STATE } from '../../shared/search-attributes';
import { isTerminalState } from '../../shared/vocabulary';
import { failureOf } from '../federation-command/failures';
import { recordStateSummary } from '../agent-run/labels';
import { oneShot, records } from './proxies';
import { followingDetails } from './labels';
import { mirrorUpdate, reached, unreached, type Mirror } from './mirror';
import { DEADLINE_KILL_REASON, hubVerdict, pause, type Outcome } from './outcomes';
import { deliverKill, historyIsLong, type Link } from './peer';
import { retrySoonMs } from './timing';

const now = (): string => new Date().toISOString();

/** What the hub's database keeps of the mirror besides the state. */
export const mirrored = ({ status }: Mirror) => ({
  progress: status.progress,
  startedAt: status.startedAt,
  lastContactAt: status.lastContactAt,
  kill: status.kill,
  note: status.note,
});

/** Asks the spoke (agent.status); what it says is mirrored, why it could not answer is noted. */
async function ask({ input, mirror }: Link): Promise<Outcome | null> {
  const { status } = mirror;
  const peer = input.remote.name;
  try {
    const summary = `ask ${peer}: agent.status`;
    const answer = await oneShot.pollRemoteAgent.executeWithOptions({ summary }, [{ agentId: input.agentId }]);
    switch (answer.kind) {
      case 'status':
        status.note = null;
        mirrorUpdate(mirror, answer, answer.contactAt, now());
        if (answer.resultFetched) mirror.resultFetched = true;
        return null;
      case 'connection_inactive':
        return pause(mirror, answer.status);
      case 'unknown_agent': {
        const error = `${peer} does not know agent ${status.remoteAgentId ?? '?'}: ${answer.message}`;
        return { state: status.kill ? 'killed' : 'failed', detail: 'remote agent unknown', error };
      }
      case 'refused':
        reached(mirror, now());
        status.note = `${peer} refused agent.status (${answer.code}) at ${now()}`;
        return null;
    }
  } catch (error) {
    unreached(
      mirror,
      `${peer} has not answered since ${status.unreachableSince ?? now()}: ${failureOf(error).message}`,
      now(),
    );
    return null;
  }
}

/** A state the spoke reported and the database does not have yet is written (the final one by the workflow). */
async function recordIfChanged({ input, mirror }: Link): Promise<void> {
  const state = mirror.status.state;
  if (state === mirror.recordedState || isTerminalState(state)) return;
  upsertSearchAttributes([{ key: AGENT_STATE, value: state }]);
  const record = { agentId: input.agentId, state, detail: `mirrored from ${input.remote.name}`, ...mirrored(mirror) };
  await records.recordFederatedState.executeWithOptions({ summary: recordStateSummary(state) }, [record]);
  mirror.recordedState = state;
}

/** The hub's own deadline passed without a final state from the spoke: one last try to stop it, then decide. */
async function giveUp(link: Link, timeoutMs: number): Promise<Outcome> {
  const { status } = link.mirror;
  if (status.remoteAgentId && status.following !== 'paused' && !status.kill?.deliveredAt) {
    status.kill ??= { reason: DEADLINE_KILL_REASON, requestedAt: now(), deliveredAt: null };
    await deliverKill(link);
  }
  return hubVerdict(link.mirror, timeoutMs);
}

/** A change of the connection's status: ACTIVE resumes a paused following, anything else pauses it. */
async function connectionChanged(link: Link, connection: string): Promise<Outcome | null> {
  const { status } = link.mirror;
  if (connection !== 'ACTIVE') return pause(link.mirror, connection);
  if (status.following !== 'paused') return null;
  status.following = 'following';
  status.note = null;
  return await ask(link);
}

/**
 * Follows the named remote agent until it ends and its result is fetched: events arrive as signals,
 * the spoke is asked when they stop, kills are delivered until confirmed, and the hub decides itself
 * once its deadline passed.
 */
export async function follow(link: Link, timeoutMs: number): Promise<Outcome> {
  const { input, mirror } = link;
  const { status } = mirror;
  const pollIntervalMs = input.pollIntervalSeconds * 1000;
  const wake = (): boolean => mirror.overdue || mirror.connectionStatus !== null;
  let askedSinceTerminal = false;
  let killTries = 0;
  let unanswered = 0;
  for (;;) {
    setCurrentDetails(followingDetails(status));
    await recordIfChanged(link);
    if (isTerminalState(status.state) && mirror.resultFetched) {
      const detail = `remote agent ${status.remoteAgentId ?? '?'} on ${input.remote.name} ended ${status.state}`;
      return { state: status.state, detail, ...(status.error ? { error: status.error } : {}) };
    }
    if (mirror.overdue) return giveUp(link, timeoutMs);
    let ended: Outcome | null = null;
    if (mirror.connectionStatus !== null) {
      const connection = mirror.connectionStatus;
      mirror.connectionStatus = null;
      ended = await connectionChanged(link, connection);
    } else if (status.following === 'paused') {
      await condition(wake);
    } else if (mirror.killDue) {
      mirror.killDue = false;
      ended = await deliverKill(link);
    } else if (isTerminalState(status.state) && !askedSinceTerminal) {
      // A terminal event does not carry the result: fetch it once at once, then at each poll interval.
      askedSinceTerminal = true;
      ended = await ask(link);
    } else if (historyIsLong(input)) {
      return { continueAsNew: true };
    } else if (status.kill && !status.kill.deliveredAt) {
      mirror.contacted = false;
      const retryMs = Math.min(pollIntervalMs, retrySoonMs(++killTries));
      await condition(wake, retryMs, { summary: `kill not delivered: trying again in ${retryMs / 1000} s` });
      mirror.killDue = true;
    } else {
      mirror.contacted = false;
      // While the spoke does not answer, it is asked again within seconds (backing off up to the poll interval).
      unanswered = status.following === 'unreachable' ? unanswered + 1 : 0;
      const askAfterMs = unanswered > 0 ? Math.min(pollIntervalMs, retrySoonMs(unanswered)) : pollIntervalMs;
      const summary =
        `waiting for remote events from ${input.remote.name} (asks after ` + `${askAfterMs / 1000} s of silence)`;
      const woke = await condition(() => mirror.contacted || wake() || mirror.killDue, askAfterMs, { summary });
      if (!woke) ended = await ask(link);
    }
    if (ended) return ended;
  }
}
