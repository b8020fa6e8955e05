import type { RemoteProgress, SpawnCommandPayload, AgentLifecycleEvent } from '../../shared/federated-agent-schemas';
import { query, signal } from '../../shared/temporal-definitions';
import type { AgentState, AgentType, DeliveryOutcome, ResultBundleStatus } from '../../shared/vocabulary';

/**
 * The hub's federatedSpawn workflow: one per agent it runs on a peer. It delivers agent.spawn, then
 * mirrors the remote agent from its events (asking with agent.status when they stop) until it ends.
 */
export const FEDERATED_SPAWN_WORKFLOW = 'federatedSpawn';

/** The peer an agent runs on, through which connection. */
export interface RemoteInstanceRef {
  connectionId: string;
  instanceId: string;
  name: string;
}

export interface FederatedSpawnInput {
  agentId: string;
  workspaceId: string;
  remote: RemoteInstanceRef;
  /** The agent.spawn COMMAND's messageId: every retry of the spawn reuses it, so the spoke starts one agent. */
  spawnMessageId: string;
  payload: SpawnCommandPayload;
  spawnedAt: string;
  /** Seconds without contact (event or reply) after which the hub asks the spoke with agent.status. */
  pollIntervalSeconds: number;
  /** History events one run may reach before it continues as new. Default 2000. */
  historyLimit?: number;
  /** Set when a run continues as new: what the previous run knew. */
  resume?: FederatedResume;
  /** The task asked for its result to be pushed (options.delivery, kept on the hub: the spoke never pushes). */
  deliver?: boolean;
}

export const FOLLOWING = [
  'spawning',
  'following',
  'waiting',
  'unreachable',
  'paused',
  'worker_unavailable',
  'ended',
] as const;
/**
 * What the hub's following of a remote agent is doing: `spawning` (delivering the spawn), `following`
 * (mirroring the remote agent from its events, asking when they stop), `waiting` (the spoke confirmed
 * the kill; its final state is awaited), `unreachable` (the spoke has not answered since
 * `unreachableSince`), `paused` (the connection is not ACTIVE: nothing is sent until it is),
 * `worker_unavailable` (the hub's own worker did not answer: the API shows the last recorded state), `ended`.
 */
export type Following = (typeof FOLLOWING)[number];

export interface KillRequest {
  reason: string;
  requestedAt: string;
  deliveredAt: string | null;
}

export interface FederatedAgentStatus {
  agentId: string;
  taskId: string;
  agentType: AgentType;
  /** The mirrored state of the remote agent (or the hub's own verdict when the spoke could not give one). */
  state: AgentState;
  remote: RemoteInstanceRef;
  remoteAgentId: string | null;
  spawnedAt: string;
  startedAt: string | null;
  progress: RemoteProgress | null;
  lastContactAt: string | null;
  following: Following;
  /** Since when the spoke has not answered (null while it answers). */
  unreachableSince: string | null;
  /** Why following is paused, why a kill is not yet delivered, what the last failed contact said. */
  note: string | null;
  kill: KillRequest | null;
  error: string | null;
  updatedAt: string;
  /** The result's bundle on this instance, fetched from the spoke once the agent completed (absent before). */
  bundle?: ResultBundleStatus | null;
  /** Where options.delivery pushed the result, or why not (absent: no push was asked, or not yet). */
  delivery?: DeliveryOutcome | null;
  /**
   * How long the remote agent waited for an operator (input_required or paused), and since when it waits now: the
   * spoke's clock stops meanwhile, so the hub's deadline moves by as much.
   */
  waitedMs?: number;
  waitingSince?: string | null;
}

export interface FederatedResume {
  status: FederatedAgentStatus;
  lastSequence: number;
  recentEventIds: string[];
  /** The state last written to the hub's database. */
  recordedState: AgentState;
  resultFetched: boolean;
  deadlineAt: number;
  /** The spawn was still unanswered: the next run goes on delivering it. */
  spawnUnanswered?: boolean;
}

/** An agent.lifecycle EVENT that the hub's API verified and hands to the workflow. */
export type RemoteAgentEvent = AgentLifecycleEvent & {
  eventId: string;
  /** When the hub's API received it: the contact time it recorded, which the workflow takes as its own. */
  receivedAt?: string;
};

export const remoteAgentEventSignal = signal<[RemoteAgentEvent]>('remoteAgentEvent');
/** Sent to every agent followed through a connection when that connection's status changes. */
export const connectionStatusSignal = signal<[{ status: string }]>('connectionStatus');
export const federatedAgentStatusQuery = query<FederatedAgentStatus>('status');
