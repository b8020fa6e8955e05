import type { RemoteProgress } from '../../shared/federated-agent-schemas';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import type { FederatedAgentStatus, FederatedResume, FederatedSpawnInput, RemoteAgentEvent } from './contract';

/**
 * The hub's mirror of a remote agent as pure state: what the spoke said (events deduplicated by id,
 * ordered by sequence, states that only move forward), whether it answers, and what the follow loop
 * has to do next. No Temporal import: tested without a worker.
 */

/** Event ids remembered for deduplication (events also carry a sequence number, which covers older ones). */
const RECENT_EVENT_IDS = 32;
/** States only move forward; the terminal ones are final. */
export const STATE_RANK: Record<AgentState, number> = {
  spawning: 0,
  queued: 1,
  running: 2,
  input_required: 2,
  paused: 2,
  completed: 3,
  failed: 3,
  killed: 3,
  timed_out: 3,
};

export const isAgentState = (state: string): state is AgentState => state in STATE_RANK;

export interface Mirror {
  status: FederatedAgentStatus;
  lastSequence: number;
  recentEventIds: string[];
  /** The state last written to the hub's database. */
  recordedState: AgentState;
  resultFetched: boolean;
  /** Events that arrived before the spawn's reply named the remote agent. */
  early: RemoteAgentEvent[];
  /** An event arrived since the follow loop last waited. */
  contacted: boolean;
  /** A connection status signalled and not yet handled. */
  connectionStatus: string | null;
  /** A kill to deliver now: set by the signal, and again after each quiet interval while undelivered. */
  killDue: boolean;
  /** The hub's own deadline (the task's timeout plus a grace) passed. */
  overdue: boolean;
}

export function newMirror(input: FederatedSpawnInput, now: string): Mirror {
  const { resume, payload } = input;
  const status: FederatedAgentStatus = resume
    ? { ...resume.status }
    : {
        agentId: input.agentId,
        taskId: payload.taskId,
        agentType: payload.agentType,
        state: 'spawning',
        remote: input.remote,
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
        updatedAt: now,
      };
  return {
    status,
    lastSequence: resume?.lastSequence ?? 0,
    recentEventIds: [...(resume?.recentEventIds ?? [])],
    recordedState: resume?.recordedState ?? 'spawning',
    resultFetched: resume?.resultFetched ?? false,
    early: [],
    contacted: false,
    connectionStatus: null,
    killDue: status.kill !== null && status.kill.deliveredAt === null,
    overdue: false,
  };
}

/** What the next run of the chain starts from. */
export function resumeOf(mirror: Mirror, deadlineAt: number): FederatedResume {
  const { status, lastSequence, recentEventIds, recordedState, resultFetched } = mirror;
  return {
    status,
    lastSequence,
    recentEventIds,
    recordedState,
    resultFetched,
    deadlineAt,
    spawnUnanswered: status.remoteAgentId === null,
  };
}

/** The spoke answered: the last contact only moves forward, and a note about its silence ends. */
export function reached({ status }: Mirror, at: string): void {
  if (status.lastContactAt === null || at > status.lastContactAt) status.lastContactAt = at;
  if (status.unreachableSince) {
    status.unreachableSince = null;
    if (status.following !== 'paused') status.note = null;
  }
  if (status.following === 'unreachable') status.following = status.remoteAgentId === null ? 'spawning' : 'following';
}

/** The spoke did not answer: since when, and why, in the status. */
export function unreached({ status }: Mirror, note: string, now: string): void {
  status.unreachableSince ??= now;
  if (status.following !== 'paused' && status.following !== 'waiting') status.following = 'unreachable';
  status.note = note;
  status.updatedAt = now;
}

export interface RemoteUpdate {
  state: AgentState;
  startedAt: string | null;
  progress: RemoteProgress;
  error: string | null;
}

/** The states in which a remote agent waits for an operator, its task's clock stopped. */
export const isWaitingForOperator = (state: AgentState): boolean => state === 'input_required' || state === 'paused';

/** Counts the time the remote agent spends waiting for an operator, as its states say. */
function noteWaiting(status: Mirror['status'], next: AgentState, now: string): void {
  const waitingBefore = isWaitingForOperator(status.state);
  const waitingNow = isWaitingForOperator(next);
  if (!waitingBefore && waitingNow) status.waitingSince = now;
  if (waitingBefore && !waitingNow && status.waitingSince) {
    status.waitedMs = (status.waitedMs ?? 0) + Math.max(0, Date.parse(now) - Date.parse(status.waitingSince));
    status.waitingSince = null;
  }
}

/** Takes what the spoke says of its agent; a terminal state is final, and states never move back. */
export function mirrorUpdate(mirror: Mirror, update: RemoteUpdate, at: string, now: string): void {
  const { status } = mirror;
  reached(mirror, at);
  if (isTerminalState(status.state)) return;
  if (STATE_RANK[update.state] >= STATE_RANK[status.state]) {
    noteWaiting(status, update.state, now);
    status.state = update.state;
  }
  status.startedAt ??= update.startedAt;
  status.progress = update.progress;
  if (update.error) status.error = update.error;
  status.updatedAt = now;
}

/** An event of the named remote agent: an older sequence only counts as contact. */
function applyEvent(mirror: Mirror, event: RemoteAgentEvent, now: string): void {
  if (event.agentId !== mirror.status.remoteAgentId) return;
  mirror.contacted = true;
  // The hub's API recorded the contact when the event arrived: the same time keeps the two in step.
  const at = event.receivedAt ?? now;
  if (event.sequence <= mirror.lastSequence) {
    reached(mirror, at);
    return;
  }
  mirror.lastSequence = event.sequence;
  mirrorUpdate(mirror, event, at, now);
}

/** A signalled event: a duplicate id is dropped, one before the remote agent is named waits. */
export function receiveEvent(mirror: Mirror, event: RemoteAgentEvent, now: string): void {
  if (mirror.recentEventIds.includes(event.eventId)) return;
  mirror.recentEventIds.push(event.eventId);
  if (mirror.recentEventIds.length > RECENT_EVENT_IDS) mirror.recentEventIds.shift();
  if (mirror.status.remoteAgentId === null) mirror.early.push(event);
  else applyEvent(mirror, event, now);
}

/** The spoke named its agent: following starts, and the events that came early are applied. */
export function named(mirror: Mirror, remoteAgentId: string, remoteState: string, now: string): void {
  const { status } = mirror;
  status.remoteAgentId = remoteAgentId;
  status.following = 'following';
  status.note = null;
  reached(mirror, now);
  if (isAgentState(remoteState) && STATE_RANK[remoteState] > STATE_RANK[status.state]) {
    noteWaiting(status, remoteState, now);
    status.state = remoteState;
  }
  for (const event of mirror.early.splice(0)) applyEvent(mirror, event, now);
}

/** An operator's kill: the first one counts, and none once the agent ended. */
export function requestKill(mirror: Mirror, reason: string | undefined, now: string): void {
  const { status } = mirror;
  if (status.kill !== null || isTerminalState(status.state)) return;
  status.kill = { reason: reason ?? 'kill requested', requestedAt: now, deliveredAt: null };
  mirror.killDue = true;
}
