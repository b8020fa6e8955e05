import { ApplicationFailure, CancellationScope, condition, continueAsNew, proxyActivities, setCurrentDetails, setHandler, sleep, upsertSearchAttributes, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { followingDetails, recordStateSummary } from './run-labels';
import { isTerminalState, killAgentSignal, type AgentState } from '../shared/agents';
import {
  connectionStatusSignal,
  FEDERATION_FAILURES,
  federatedAgentStatusQuery,
  remoteAgentEventSignal,
  timeoutGraceMs,
  type FederatedAgentStatus,
  type FederatedSpawnInput,
  type OutboundCommand,
  type RemoteAgentEvent,
  type RemoteProgress,
} from '../shared/federated-agents';
import { AGENT_STATE } from '../shared/search-attributes';
import { failureOf } from './federation-failures';

const DEFAULT_HISTORY_LIMIT = 2000;
const DEFAULT_TIMEOUT_MS = 3600 * 1000;
/** Event ids remembered for deduplication (events also carry a sequence number, which covers older ones). */
const RECENT_EVENT_IDS = 32;
/** States only move forward; the terminal ones are final. */
const STATE_RANK: Record<AgentState, number> = { spawning: 0, queued: 1, running: 2, completed: 3, failed: 3, killed: 3, timed_out: 3 };


const records = proxyActivities<Pick<Activities, 'recordRemoteAgent' | 'recordFederatedState' | 'recordCommandFailure'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});
const verification = proxyActivities<Pick<Activities, 'verifyCommandReply'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 5, nonRetryableErrorTypes: [FEDERATION_FAILURES.replyNotVerified] },
});
/** One attempt per call: the follow loop decides when to ask (or kill) again and says why in the status. */
const oneShot = proxyActivities<Pick<Activities, 'pollRemoteAgent' | 'sendCommand'>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

/** Spawn delivery backs off from 1 s to 30 s between attempts: a spoke back from an outage hears again within 30 s. */
const SPAWN_RETRY_FIRST_MS = 1000;
const SPAWN_RETRY_MAX_MS = 30_000;
/** Once the deadline passed, the tries left to learn whether the spoke took an undelivered spawn. */
const RESOLVE_TRIES_AFTER_DEADLINE = 3;

/** The reason of the kill the hub sends itself when the task's deadline passed (not an operator's). */
const DEADLINE_KILL_REASON = 'the task timed out';

const backoffMs = (attempt: number): number => Math.min(SPAWN_RETRY_FIRST_MS * 2 ** Math.min(attempt - 1, 10), SPAWN_RETRY_MAX_MS);
/**
 * An undelivered kill, and a question the spoke did not answer, are tried again within seconds (not at
 * the poll interval), so they land within seconds of the link's return; after the first 30 tries,
 * every 30 s (a bounded history).
 */
const retrySoonMs = (attempt: number): number => Math.min(backoffMs(attempt), attempt <= 30 ? 5_000 : SPAWN_RETRY_MAX_MS);

type Outcome = { state: AgentState; detail: string; error?: string } | { continueAsNew: true };

/**
 * Runs on the hub, one per agent it runs on a peer: sign and send agent.spawn, verify the spoke's
 * signed reply, then follow the remote agent until it is terminal: its agent.lifecycle events arrive
 * as signals (deduplicated by event id, ordered by sequence); when none came for a poll interval the
 * hub asks with agent.status. Signal `kill` sends agent.kill and waits for the spoke's confirmation;
 * query `status` returns the mirrored state, the remote progress and the last contact. The task's
 * timeout is enforced here too (plus a grace for the spoke's own verdict), and the run continues as
 * new before its history grows long, however long the remote agent runs.
 */
export async function federatedSpawn(input: FederatedSpawnInput): Promise<FederatedAgentStatus> {
  const { agentId, remote, payload, resume } = input;
  const timeoutMs = payload.options?.timeout ?? DEFAULT_TIMEOUT_MS;
  const pollIntervalMs = input.pollIntervalSeconds * 1000;
  const historyLimit = input.historyLimit ?? DEFAULT_HISTORY_LIMIT;
  const now = (): string => new Date().toISOString();

  const status: FederatedAgentStatus = resume
    ? { ...resume.status }
    : {
        agentId,
        taskId: payload.taskId,
        agentType: payload.agentType,
        state: 'spawning',
        remote,
        remoteAgentId: null,
        spawnedAt: input.spawnedAt,
        startedAt: null,
        progress: null,
        lastContactAt: null,
        following: 'spawning',
        unreachableSince: null,
        note: null,
        kill: null,
        error: null,
        updatedAt: now(),
      };
  let lastSequence = resume?.lastSequence ?? 0;
  const recentEventIds = [...(resume?.recentEventIds ?? [])];
  let recordedState: AgentState = resume?.recordedState ?? 'spawning';
  let resultFetched = resume?.resultFetched ?? false;
  const deadlineAt = resume?.deadlineAt ?? Date.now() + timeoutMs + timeoutGraceMs(timeoutMs);

  /** Events that arrive before the spawn reply named the remote agent wait here. */
  const early: RemoteAgentEvent[] = [];
  /** An event arrived since the loop last waited. */
  let contacted = false;
  /** A connection status signalled and not yet handled. */
  let connectionStatus: string | null = null;
  /** A kill to deliver now: set by the signal, and again after each quiet poll interval while undelivered. */
  let killDue = status.kill !== null && status.kill.deliveredAt === null;
  let overdue = false;

  /**
   * The spoke answered (an event, a reply): the last contact only moves forward, and a note about the
   * spoke not answering ends the moment it answers again.
   */
  function reached(at: string): void {
    if (status.lastContactAt === null || at > status.lastContactAt) status.lastContactAt = at;
    if (status.unreachableSince) {
      status.unreachableSince = null;
      if (status.following !== 'paused') status.note = null;
    }
    if (status.following === 'unreachable') status.following = status.remoteAgentId === null ? 'spawning' : 'following';
  }

  /** The spoke did not answer: since when, and why, in the status. */
  function unreached(note: string): void {
    status.unreachableSince ??= now();
    if (status.following !== 'paused' && status.following !== 'waiting') status.following = 'unreachable';
    status.note = note;
    status.updatedAt = now();
  }

  function mirror(update: { state: AgentState; startedAt: string | null; progress: RemoteProgress; error: string | null }, at: string): void {
    reached(at);
    if (isTerminalState(status.state)) return;
    if (STATE_RANK[update.state] >= STATE_RANK[status.state]) status.state = update.state;
    status.startedAt ??= update.startedAt;
    status.progress = update.progress;
    if (update.error) status.error = update.error;
    status.updatedAt = now();
  }

  function applyEvent(event: RemoteAgentEvent): void {
    if (event.agentId !== status.remoteAgentId) return;
    contacted = true;
    // The hub's API recorded the contact when the event arrived: the same time here keeps the two in step.
    const at = event.receivedAt ?? now();
    if (event.sequence <= lastSequence) {
      reached(at);
      return;
    }
    lastSequence = event.sequence;
    mirror(event, at);
  }

  setHandler(federatedAgentStatusQuery, () => status);
  setHandler(killAgentSignal, ({ reason }) => {
    if (status.kill !== null || isTerminalState(status.state)) return;
    status.kill = { reason: reason ?? 'kill requested', requestedAt: now(), deliveredAt: null };
    killDue = true;
  });
  setHandler(remoteAgentEventSignal, (event) => {
    if (recentEventIds.includes(event.eventId)) return;
    recentEventIds.push(event.eventId);
    if (recentEventIds.length > RECENT_EVENT_IDS) recentEventIds.shift();
    if (status.remoteAgentId === null) early.push(event);
    else applyEvent(event);
  });
  setHandler(connectionStatusSignal, ({ status: connection }) => {
    connectionStatus = connection;
  });

  const spawnCommand: OutboundCommand = {
    connectionId: remote.connectionId,
    messageId: input.spawnMessageId,
    commandType: 'agent.spawn',
    payload,
    nonce: input.spawnMessageId.replace(/-/g, ''),
    timestamp: input.spawnedAt,
  };

  /** The spoke named its agent (in the spawn's reply, or in the answer to a kill by the spawn's messageId). */
  async function named(remoteAgentId: string, remoteState: string): Promise<void> {
    status.remoteAgentId = remoteAgentId;
    status.following = 'following';
    status.note = null;
    reached(now());
    if (remoteState in STATE_RANK && STATE_RANK[remoteState as AgentState] > STATE_RANK[status.state]) status.state = remoteState as AgentState;
    await records.recordRemoteAgent.executeWithOptions({ summary: `record remote agent ${remoteAgentId}` }, [{ agentId, remoteAgentId, contactAt: status.lastContactAt ?? now() }]);
    for (const event of early.splice(0)) applyEvent(event);
  }

  /**
   * Delivers the spawn under one messageId until the spoke answers, however long it takes: the spoke
   * takes it once and answers copies with the stored reply. The budget is the task's deadline, not its
   * maxRetries (those are the agent's own retries). A kill or the deadline while it is undelivered
   * settles with the spoke whether it took the spawn before anything is declared.
   */
  async function spawn(): Promise<Outcome | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        await oneShot.sendCommand.executeWithOptions({ summary: `send agent.spawn to ${remote.name}` }, [spawnCommand]);
        break;
      } catch (error) {
        const failure = failureOf(error);
        if (failure.type !== FEDERATION_FAILURES.peerUnreachable) return spawnRefused(failure);
        const since = status.unreachableSince ?? now();
        unreached(`${remote.name} has not answered the spawn since ${since} (${attempt} attempts, last: ${failure.message}); sending it again until the task's deadline`);
        setCurrentDetails(followingDetails(status));
      }
      const interrupted = await condition(() => status.kill !== null || overdue, backoffMs(attempt), { summary: `spawn not answered: sending again in ${backoffMs(attempt) / 1000} s` });
      if (interrupted) return settleUndelivered();
      // A long outage: the next run goes on delivering (same messageId), with a short history.
      if (workflowInfo().historyLength > historyLimit || workflowInfo().continueAsNewSuggested) return { continueAsNew: true };
    }
    try {
      const reply = await verification.verifyCommandReply.executeWithOptions({ summary: `verify ${remote.name}'s signed reply to agent.spawn` }, [spawnCommand]);
      if (reply.status === 'error') return { state: 'failed', detail: 'spawn refused', error: `${remote.name} refused the spawn: ${reply.error?.code ?? 'error'}: ${reply.error?.message ?? ''}` };
      const remoteAgentId = reply.result?.agentId;
      const remoteState = reply.result?.state;
      if (typeof remoteAgentId !== 'string' || typeof remoteState !== 'string' || !(remoteState in STATE_RANK)) {
        return { state: 'failed', detail: 'spawn reply unreadable', error: `${remote.name} answered the spawn without an agent id and state` };
      }
      await named(remoteAgentId, remoteState);
      return null;
    } catch (error) {
      return spawnRefused(failureOf(error));
    }
  }

  function spawnRefused(failure: ReturnType<typeof failureOf>): Outcome {
    const reasons: Record<string, string> = {
      [FEDERATION_FAILURES.commandRefused]: `${remote.name} refused the spawn: ${failure.message}`,
      [FEDERATION_FAILURES.replyNotVerified]: `${remote.name}'s reply to the spawn could not be trusted: ${failure.message}`,
      [FEDERATION_FAILURES.connectionInactive]: `nothing was sent: ${failure.message}`,
    };
    return { state: 'failed', detail: 'spawn not delivered', error: reasons[failure.type ?? ''] ?? `the spawn failed: ${failure.message}` };
  }

  /**
   * A kill or the deadline came while the spawn was unanswered: the spoke may have taken it. agent.kill
   * by the spawn's messageId settles it: a spawn not taken is cancelled there for good, a taken one is
   * killed (and followed to its end), and whatever the spoke answers is the hub's truth. Only when the
   * spoke cannot be reached, even past the deadline, does the hub give up, and it says so.
   */
  async function settleUndelivered(): Promise<Outcome | null> {
    const operatorKill = status.kill !== null;
    status.kill ??= { reason: DEADLINE_KILL_REASON, requestedAt: now(), deliveredAt: null };
    await records.recordCommandFailure({ connectionId: remote.connectionId, messageId: input.spawnMessageId, reason: 'no answer; settled by agent.kill under its messageId' });
    let triesAfterDeadline = 0;
    for (let attempt = 1; ; attempt++) {
      const answer = await sendKill({ spawnMessageId: input.spawnMessageId });
      if (answer.kind === 'ended') return answer.outcome;
      if (answer.kind === 'answered') {
        const remoteAgentId = answer.result?.agentId;
        const remoteState = answer.result?.state;
        status.kill.deliveredAt = now();
        reached(now());
        if (typeof remoteAgentId === 'string') {
          await named(remoteAgentId, typeof remoteState === 'string' ? remoteState : 'killing');
          if (remoteState === 'killing') status.following = 'waiting';
          return null;
        }
        return {
          state: operatorKill ? 'killed' : 'timed_out',
          detail: 'spawn cancelled before it was taken',
          error: `${remote.name} had not taken the spawn: it is cancelled there and will never run`,
        };
      }
      const why = answer.kind === 'refused' ? `${remote.name} refused it (${answer.code})` : answer.message;
      if (overdue && ++triesAfterDeadline >= RESOLVE_TRIES_AFTER_DEADLINE) {
        return {
          state: operatorKill ? 'killed' : 'timed_out',
          detail: 'spawn unresolved',
          error: `${remote.name} never answered the spawn nor the kill sent under its messageId (last: ${why}); whether it took the spawn is unknown`,
        };
      }
      if (answer.kind === 'refused') status.note = `the spawn was never answered; ${why}; trying again`;
      else unreached(`the spawn was never answered, nor its kill yet (${why}); trying again`);
      setCurrentDetails(followingDetails(status));
      await sleep(retrySoonMs(attempt), { summary: `kill by the spawn's messageId not delivered: trying again in ${retrySoonMs(attempt) / 1000} s` });
    }
  }

  function pause(connection: string): Outcome | null {
    if (connection === 'DISCONNECTED') {
      return { state: 'failed', detail: 'connection disconnected', error: `the connection to ${remote.name} was disconnected: the hub stopped following agent ${status.remoteAgentId ?? '?'} (last known state ${status.state})` };
    }
    status.following = 'paused';
    status.note = `the connection to ${remote.name} is ${connection}: following is paused until it is ACTIVE again`;
    return null;
  }

  /** Asks the spoke (agent.status); what it says is mirrored, why it could not answer is noted. */
  async function ask(): Promise<Outcome | null> {
    try {
      const answer = await oneShot.pollRemoteAgent.executeWithOptions({ summary: `ask ${remote.name}: agent.status` }, [{ agentId }]);
      switch (answer.kind) {
        case 'status':
          status.note = null;
          mirror(answer, answer.contactAt);
          if (answer.resultFetched) resultFetched = true;
          return null;
        case 'connection_inactive':
          return pause(answer.status);
        case 'unknown_agent':
          return { state: status.kill ? 'killed' : 'failed', detail: 'remote agent unknown', error: `${remote.name} does not know agent ${status.remoteAgentId ?? '?'}: ${answer.message}` };
        case 'refused':
          reached(now());
          status.note = `${remote.name} refused agent.status (${answer.code}) at ${now()}`;
          return null;
      }
    } catch (error) {
      unreached(`${remote.name} has not answered since ${status.unreachableSince ?? now()}: ${failureOf(error).message}`);
      return null;
    }
  }

  type KillAnswer =
    | { kind: 'answered'; result: Record<string, unknown> | null }
    | { kind: 'refused'; code: string }
    | { kind: 'unanswered'; message: string }
    | { kind: 'ended'; outcome: Outcome };

  /** Sends agent.kill (a new messageId each attempt: a kill is idempotent on the spoke) and reads the verified reply. */
  async function sendKill(target: { agentId: string } | { spawnMessageId: string }): Promise<KillAnswer> {
    const command: OutboundCommand = {
      connectionId: remote.connectionId,
      messageId: uuid4(),
      commandType: 'agent.kill',
      payload: target,
      nonce: uuid4().replace(/-/g, ''),
      timestamp: now(),
    };
    try {
      await oneShot.sendCommand.executeWithOptions({ summary: `send agent.kill to ${remote.name}` }, [command]);
      const reply = await verification.verifyCommandReply.executeWithOptions({ summary: `verify ${remote.name}'s signed reply to agent.kill` }, [command]);
      if (reply.status === 'ok') return { kind: 'answered', result: reply.result };
      return { kind: 'refused', code: reply.error?.code ?? 'error' };
    } catch (error) {
      const failure = failureOf(error);
      if (failure.type === FEDERATION_FAILURES.connectionInactive) {
        const [connection] = failure.details;
        const paused = pause(typeof connection === 'string' ? connection : 'not ACTIVE');
        if (paused) return { kind: 'ended', outcome: paused };
        return { kind: 'unanswered', message: status.note ?? 'the connection is not ACTIVE' };
      }
      // This message is not sent again (the next try is a new one): its row ends failed.
      if (failure.type === FEDERATION_FAILURES.peerUnreachable) await records.recordCommandFailure({ connectionId: remote.connectionId, messageId: command.messageId, reason: failure.message });
      return { kind: 'unanswered', message: failure.message };
    }
  }

  /** Delivers the kill of the named remote agent; the outcome when the spoke's answer ends the run. */
  async function deliverKill(): Promise<Outcome | null> {
    const answer = await sendKill({ agentId: status.remoteAgentId ?? '' });
    switch (answer.kind) {
      case 'ended':
        return answer.outcome;
      case 'answered':
      case 'refused': {
        const code = answer.kind === 'refused' ? answer.code : null;
        reached(now());
        if (answer.kind === 'answered' || code === 'already_finished') {
          if (status.kill) status.kill.deliveredAt = now();
          status.note = code === 'already_finished' ? `${remote.name} says the agent had already finished` : null;
          if (answer.kind === 'answered') status.following = 'waiting';
          return null;
        }
        if (code === 'not_found') return { state: 'killed', detail: 'remote agent unknown', error: `${remote.name} does not know agent ${status.remoteAgentId ?? '?'}` };
        status.note = `${remote.name} refused the kill (${code ?? 'error'}); trying again`;
        return null;
      }
      case 'unanswered':
        if (status.following !== 'paused') unreached(`kill not delivered yet (${answer.message}); trying again in a few seconds`);
        return null;
    }
  }

  /** The hub's own deadline passed without a final state from the spoke: one last try to stop it, then decide. */
  async function giveUp(): Promise<Outcome> {
    const killRequested = status.kill !== null && status.kill.reason !== DEADLINE_KILL_REASON;
    if (status.remoteAgentId && status.following !== 'paused' && !status.kill?.deliveredAt) {
      status.kill ??= { reason: DEADLINE_KILL_REASON, requestedAt: now(), deliveredAt: null };
      await deliverKill();
    }
    const contact = `last contact ${status.lastContactAt ?? 'never'}`;
    if (killRequested) {
      return { state: 'killed', detail: 'kill not confirmed', error: `${remote.name} did not confirm the kill before the deadline (${contact})` };
    }
    return { state: 'timed_out', detail: 'hub deadline', error: `no final state from ${remote.name} within the task's timeout of ${timeoutMs} ms (${contact})` };
  }

  /** What the hub's database keeps of the mirror besides the state. */
  const mirrored = () => ({ progress: status.progress, startedAt: status.startedAt, lastContactAt: status.lastContactAt, kill: status.kill, note: status.note });

  async function recordIfChanged(): Promise<void> {
    const state: AgentState = status.state;
    if (state === recordedState || isTerminalState(state)) return;
    upsertSearchAttributes([{ key: AGENT_STATE, value: state }]);
    await records.recordFederatedState.executeWithOptions({ summary: recordStateSummary(state) }, [{ agentId, state, detail: `mirrored from ${remote.name}`, ...mirrored() }]);
    recordedState = state;
  }

  async function follow(): Promise<Outcome> {
    let askedSinceTerminal = false;
    let killTries = 0;
    let unanswered = 0;
    for (;;) {
      setCurrentDetails(followingDetails(status));
      await recordIfChanged();
      if (isTerminalState(status.state) && resultFetched) {
        return { state: status.state, detail: `remote agent ${status.remoteAgentId ?? '?'} on ${remote.name} ended ${status.state}`, ...(status.error ? { error: status.error } : {}) };
      }
      if (overdue) return giveUp();
      if (connectionStatus !== null) {
        const signalled: string = connectionStatus;
        connectionStatus = null;
        if (signalled === 'ACTIVE') {
          if (status.following === 'paused') {
            status.following = 'following';
            status.note = null;
            const ended = await ask();
            if (ended) return ended;
          }
        } else {
          const ended = pause(signalled);
          if (ended) return ended;
        }
        continue;
      }
      if (status.following === 'paused') {
        await condition(() => connectionStatus !== null || overdue);
        continue;
      }
      if (killDue) {
        killDue = false;
        const ended = await deliverKill();
        if (ended) return ended;
        continue;
      }
      // A terminal event does not carry the result: fetch it once at once, then at each poll interval.
      if (isTerminalState(status.state) && !askedSinceTerminal) {
        askedSinceTerminal = true;
        const ended = await ask();
        if (ended) return ended;
        continue;
      }
      const info = workflowInfo();
      if (info.historyLength > historyLimit || info.continueAsNewSuggested) return { continueAsNew: true };
      contacted = false;
      if (status.kill && !status.kill.deliveredAt) {
        killTries++;
        const retryMs = Math.min(pollIntervalMs, retrySoonMs(killTries));
        await condition(() => overdue || connectionStatus !== null, retryMs, { summary: `kill not delivered: trying again in ${retryMs / 1000} s` });
        killDue = true;
        continue;
      }
      // While the spoke does not answer, it is asked again within seconds (backing off up to the poll interval).
      unanswered = status.following === 'unreachable' ? unanswered + 1 : 0;
      const askAfterMs = unanswered > 0 ? Math.min(pollIntervalMs, retrySoonMs(unanswered)) : pollIntervalMs;
      const woke = await condition(() => contacted || overdue || connectionStatus !== null || killDue, askAfterMs, {
        summary: `waiting for remote events from ${remote.name} (asks after ${askAfterMs / 1000} s of silence)`,
      });
      if (!woke) {
        const ended = await ask();
        if (ended) return ended;
      }
    }
  }

  const deadline = new CancellationScope();
  deadline
    .run(async () => {
      await sleep(Math.max(1, deadlineAt - Date.now()), { summary: `deadline: task timeout of ${timeoutMs} ms plus grace` });
      overdue = true;
    })
    .catch(() => undefined); // cancelled when the run ends first

  let outcome: Outcome | null = null;
  try {
    if (!resume || resume.spawnUnanswered) outcome = await spawn();
    outcome ??= await follow();
  } finally {
    deadline.cancel();
  }

  if ('continueAsNew' in outcome) {
    return await continueAsNew<typeof federatedSpawn>({ ...input, resume: { status, lastSequence, recentEventIds, recordedState, resultFetched, deadlineAt, spawnUnanswered: status.remoteAgentId === null } });
  }
  status.state = outcome.state;
  status.following = 'ended';
  status.updatedAt = now();
  if (outcome.error !== undefined) status.error = outcome.error;
  upsertSearchAttributes([{ key: AGENT_STATE, value: outcome.state }]);
  setCurrentDetails(followingDetails(status));
  await records.recordFederatedState.executeWithOptions({ summary: `record final state: ${outcome.state}` }, [{
    agentId,
    state: outcome.state,
    detail: outcome.detail,
    ...(outcome.error !== undefined ? { error: outcome.error } : {}),
    ...mirrored(),
  }]);
  if (outcome.state === 'failed') throw ApplicationFailure.nonRetryable(outcome.error ?? 'agent failed', 'AgentFailed');
  return status;
}
