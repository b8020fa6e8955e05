import { condition, setCurrentDetails, sleep, uuid4, workflowInfo } from '@temporalio/workflow';
import { FEDERATION_FAILURES, type OutboundCommand } from '../federation-command/contract';
import { failureOf } from '../federation-command/failures';
import { followingDetails } from './labels';
import { oneShot, records, verification } from './proxies';
import type { FederatedSpawnInput } from './contract';
import { isAgentState, named, reached, unreached, type Mirror } from './mirror';
import { DEADLINE_KILL_REASON, pause, spawnRefused, type Outcome } from './outcomes';
import { backoffMs, retrySoonMs } from './timing';

/** Once the deadline passed, the tries left to learn whether the spoke took an undelivered spawn. */
const RESOLVE_TRIES_AFTER_DEADLINE = 3;
/** History events one run may reach before it continues as new. */
const DEFAULT_HISTORY_LIMIT = 2000;

const now = (): string => new Date().toISOString();

/** The hub's side of the conversation with the spoke about one agent: spawn, kill, and their answers. */
export interface Link {
  input: FederatedSpawnInput;
  mirror: Mirror;
}

export const historyIsLong = (input: FederatedSpawnInput): boolean =>
  workflowInfo().historyLength > (input.historyLimit ?? DEFAULT_HISTORY_LIMIT) || workflowInfo().continueAsNewSuggested;

/** The spoke named its agent: the mirror follows it and the hub's database records it. */
async function recordNamed(link: Link, remoteAgentId: string, remoteState: string): Promise<void> {
  named(link.mirror, remoteAgentId, remoteState, now());
  const record = { agentId: link.input.agentId, remoteAgentId, contactAt: link.mirror.status.lastContactAt ?? now() };
  await records.recordRemoteAgent.executeWithOptions({ summary: `record remote agent ${remoteAgentId}` }, [record]);
}

/**
 * Delivers the spawn under one messageId until the spoke answers, however long it takes: the spoke
 * takes it once and answers copies with the stored reply. The budget is the task's deadline. A kill or
 * the deadline while it is undelivered settles with the spoke whether it took the spawn.
 */
export async function deliverSpawn(link: Link): Promise<Outcome | null> {
  const { input, mirror } = link;
  const peer = input.remote.name;
  const spawn: OutboundCommand = {
    connectionId: input.remote.connectionId,
    messageId: input.spawnMessageId,
    commandType: 'agent.spawn',
    payload: input.payload,
    nonce: input.spawnMessageId.replace(/-/g, ''),
    timestamp: input.spawnedAt,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      await oneShot.sendCommand.executeWithOptions({ summary: `send agent.spawn to ${peer}` }, [spawn]);
      break;
    } catch (error) {
      const failure = failureOf(error);
      if (failure.type !== FEDERATION_FAILURES.peerUnreachable) return spawnRefused(failure, peer);
      const since = mirror.status.unreachableSince ?? now();
      const tried = `${attempt} attempts, last: ${failure.message}`;
      unreached(
        mirror,
        `${peer} has not answered the spawn since ${since} (${tried}); sending it again until the task's deadline`,
        now(),
      );
      setCurrentDetails(followingDetails(mirror.status));
    }
    const summary = `spawn not answered: sending again in ${backoffMs(attempt) / 1000} s`;
    if (await condition(() => mirror.status.kill !== null || mirror.overdue, backoffMs(attempt), { summary }))
      return settleUndelivered(link);
    // A long outage: the next run goes on delivering (same messageId), with a short history.
    if (historyIsLong(input)) return { continueAsNew: true };
  }
  try {
    const reply = await verification.verifyCommandReply.executeWithOptions(
      { summary: `verify ${peer}'s signed reply to agent.spawn` },
      [spawn],
    );
    if (reply.status === 'error') {
      return {
        state: 'failed',
        detail: 'spawn refused',
        error: `${peer} refused the spawn: ${reply.error?.code ?? 'error'}: ${reply.error?.message ?? ''}`,
      };
    }
    const remoteAgentId = reply.result?.agentId;
    const remoteState = reply.result?.state;
    if (typeof remoteAgentId !== 'string' || typeof remoteState !== 'string' || !isAgentState(remoteState)) {
      return {
        state: 'failed',
        detail: 'spawn reply unreadable',
        error: `${peer} answered the spawn without an agent id and state`,
      };
    }
    await recordNamed(link, remoteAgentId, remoteState);
    return null;
  } catch (error) {
    return spawnRefused(failureOf(error), peer);
  }
}

/**
 * A kill or the deadline came while the spawn was unanswered: the spoke may have taken it. agent.kill
 * by the spawn's messageId settles it: a spawn not taken is cancelled there for good, a taken one is
 * killed (and followed to its end). Only when the spoke cannot be reached, even past the deadline,
 * does the hub give up, and it says so.
 */
async function settleUndelivered(link: Link): Promise<Outcome | null> {
  const { input, mirror } = link;
  const { status } = mirror;
  const peer = input.remote.name;
  const ended: AgentEnding = status.kill !== null ? 'killed' : 'timed_out';
  const kill = (status.kill ??= { reason: DEADLINE_KILL_REASON, requestedAt: now(), deliveredAt: null });
  const reason = 'no answer; settled by agent.kill under its messageId';
  await records.recordCommandFailure({
    connectionId: input.remote.connectionId,
    messageId: input.spawnMessageId,
    reason,
  });
  let triesAfterDeadline = 0;
  for (let attempt = 1; ; attempt++) {
    const answer = await sendKill(link, { spawnMessageId: input.spawnMessageId });
    if (answer.kind === 'ended') return answer.outcome;
    if (answer.kind === 'answered') {
      const remoteAgentId = answer.result?.agentId;
      const remoteState = answer.result?.state;
      kill.deliveredAt = now();
      if (typeof remoteAgentId !== 'string') {
        reached(mirror, now());
        const error = `${peer} had not taken the spawn: it is cancelled there and will never run`;
        return { state: ended, detail: 'spawn cancelled before it was taken', error };
      }
      await recordNamed(link, remoteAgentId, typeof remoteState === 'string' ? remoteState : 'killing');
      if (remoteState === 'killing') status.following = 'waiting';
      return null;
    }
    const why = answer.kind === 'refused' ? `${peer} refused it (${answer.code})` : answer.message;
    if (mirror.overdue && ++triesAfterDeadline >= RESOLVE_TRIES_AFTER_DEADLINE) {
      const error =
        `${peer} never answered the spawn nor the kill sent under its messageId ` +
        `(last: ${why}); whether it took the spawn is unknown`;
      return { state: ended, detail: 'spawn unresolved', error };
    }
    if (answer.kind === 'refused') status.note = `the spawn was never answered; ${why}; trying again`;
    else unreached(mirror, `the spawn was never answered, nor its kill yet (${why}); trying again`, now());
    setCurrentDetails(followingDetails(status));
    const summary = `kill by the spawn's messageId not delivered: trying again in ${retrySoonMs(attempt) / 1000} s`;
    await sleep(retrySoonMs(attempt), { summary });
  }
}

type AgentEnding = 'killed' | 'timed_out';

type KillAnswer =
  | { kind: 'answered'; result: Record<string, unknown> | null }
  | { kind: 'refused'; code: string }
  | { kind: 'unanswered'; message: string }
  | { kind: 'ended'; outcome: Outcome };

/** Sends agent.kill (a new messageId each attempt: a kill is idempotent on the spoke) and reads the verified reply. */
async function sendKill(
  { input, mirror }: Link,
  target: { agentId: string } | { spawnMessageId: string },
): Promise<KillAnswer> {
  const peer = input.remote.name;
  const command: OutboundCommand = {
    connectionId: input.remote.connectionId,
    messageId: uuid4(),
    commandType: 'agent.kill',
    payload: target,
    nonce: uuid4().replace(/-/g, ''),
    timestamp: now(),
  };
  try {
    await oneShot.sendCommand.executeWithOptions({ summary: `send agent.kill to ${peer}` }, [command]);
    const summary = `verify ${peer}'s signed reply to agent.kill`;
    const reply = await verification.verifyCommandReply.executeWithOptions({ summary }, [command]);
    if (reply.status === 'ok') return { kind: 'answered', result: reply.result };
    return { kind: 'refused', code: reply.error?.code ?? 'error' };
  } catch (error) {
    const failure = failureOf(error);
    if (failure.type === FEDERATION_FAILURES.connectionInactive) {
      const [connection] = failure.details;
      const paused = pause(mirror, typeof connection === 'string' ? connection : 'not ACTIVE');
      if (paused) return { kind: 'ended', outcome: paused };
      return { kind: 'unanswered', message: mirror.status.note ?? 'the connection is not ACTIVE' };
    }
    // This message is not sent again (the next try is a new one): its row ends failed.
    if (failure.type === FEDERATION_FAILURES.peerUnreachable) {
      const failed = { connectionId: input.remote.connectionId, messageId: command.messageId, reason: failure.message };
      await records.recordCommandFailure(failed);
    }
    return { kind: 'unanswered', message: failure.message };
  }
}

/** Delivers the kill of the named remote agent; the outcome when the spoke's answer ends the run. */
export async function deliverKill(link: Link): Promise<Outcome | null> {
  const { mirror } = link;
  const { status } = mirror;
  const peer = link.input.remote.name;
  const answer = await sendKill(link, { agentId: status.remoteAgentId ?? '' });
  if (answer.kind === 'ended') return answer.outcome;
  if (answer.kind === 'unanswered') {
    if (status.following !== 'paused')
      unreached(mirror, `kill not delivered yet (${answer.message}); trying again in a few seconds`, now());
    return null;
  }
  const code = answer.kind === 'refused' ? answer.code : null;
  reached(mirror, now());
  if (answer.kind === 'answered' || code === 'already_finished') {
    if (status.kill) status.kill.deliveredAt = now();
    status.note = code === 'already_finished' ? `${peer} says the agent had already finished` : null;
    if (answer.kind === 'answered') status.following = 'waiting';
    return null;
  }
  if (code === 'not_found')
    return {
      state: 'killed',
      detail: 'remote agent unknown',
      error: `${peer} does not know agent ${status.remoteAgentId ?? '?'}`,
    };
  status.note = `${peer} refused the kill (${code ?? 'error'}); trying again`;
  return null;
}
