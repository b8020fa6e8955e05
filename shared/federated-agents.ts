import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { z } from 'zod';
import type { AgentState, AgentType } from './agents';
import type {
  AgentLifecycleEventSchema,
  AgentResultPayloadSchema,
  FederatedAgentOptionsSchema,
  RemoteProgressSchema,
  SpawnCommandPayloadSchema,
  StatusReplyResultSchema,
} from './federated-agent-schemas';

/**
 * Agents across federation, as the API and the workflows both see them: the hub's federatedSpawn
 * workflow (one per agent it runs on a peer), the spoke's hubEventDelivery workflow (pushes an
 * agent's state changes to the hub that spawned it), and federationCommand (one signed command).
 */
export const FEDERATED_SPAWN_WORKFLOW = 'federatedSpawn';
export const HUB_EVENT_DELIVERY_WORKFLOW = 'hubEventDelivery';
export const FEDERATION_COMMAND_WORKFLOW = 'federationCommand';

export type SpawnCommandPayload = z.infer<typeof SpawnCommandPayloadSchema>;
export type FederatedAgentOptions = z.infer<typeof FederatedAgentOptionsSchema>;
export type RemoteProgress = z.infer<typeof RemoteProgressSchema>;
export type AgentLifecycleEvent = z.infer<typeof AgentLifecycleEventSchema>;
export type StatusReplyResult = z.infer<typeof StatusReplyResultSchema>;
export type AgentResultPayload = z.infer<typeof AgentResultPayloadSchema>;

/** The peer an agent runs on, through which connection. */
export interface RemoteInstanceRef {
  connectionId: string;
  instanceId: string;
  name: string;
}

/** Milliseconds the hub waits past the task's timeout for the spoke's own verdict before deciding itself. */
export function timeoutGraceMs(timeoutMs: number): number {
  return Math.min(60_000, Math.max(5_000, Math.round(timeoutMs / 10)));
}

// ---- hub: federatedSpawn ----

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
}

export const FOLLOWING = ['spawning', 'following', 'waiting', 'unreachable', 'paused', 'worker_unavailable', 'ended'] as const;
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

export const remoteAgentEventSignal = defineSignal<[RemoteAgentEvent]>('remoteAgentEvent');
/** Sent to every agent followed through a connection when that connection's status changes. */
export const connectionStatusSignal = defineSignal<[{ status: string }]>('connectionStatus');
export const federatedAgentStatusQuery = defineQuery<FederatedAgentStatus>('status');

// ---- spoke: hubEventDelivery ----

/** Set on agents a hub spawned here: the connection and the spawn's messageId. */
export interface AgentOrigin {
  connectionId: string;
  spawnMessageId: string;
}

/** One state change of an agent, as agentRun reports it to its delivery workflow. */
export interface LifecycleSnapshot {
  state: AgentState;
  startedAt: string | null;
  progress: RemoteProgress;
  error: string | null;
  occurredAt: string;
}

export interface HubEventDeliveryInput {
  agentId: string;
  origin: AgentOrigin;
  /** Epoch ms after which it stops waiting for more state changes (the agent's deadline plus an hour). */
  expiresAt: number;
}

export const agentLifecycleSignal = defineSignal<[LifecycleSnapshot]>('lifecycle');

export function hubEventDeliveryWorkflowId(agentId: string): string {
  return `${agentId}-hub-events`;
}

// ---- hub: federationCommand (POST /api/v1/federation/command) ----

export interface OutboundCommand {
  connectionId: string;
  messageId: string;
  commandType: string;
  payload: Record<string, unknown>;
  /** The envelope's nonce and timestamp are fixed per messageId, so a retried send has the same bytes. */
  nonce: string;
  timestamp: string;
}

export function federationCommandWorkflowId(messageId: string): string {
  return `federation-command-${messageId}`;
}

/** ApplicationFailure types of the federation activities, which the workflows tell apart. */
export const FEDERATION_FAILURES = {
  /** The peer did not answer, or answered "not now" (busy, rate limited): worth another try. */
  peerUnreachable: 'PeerUnreachable',
  /** The peer refused the request before running it (unsigned 4xx): another try gets the same answer. */
  commandRefused: 'CommandRefused',
  /** The reply was not signed by the peer for this very message. */
  replyNotVerified: 'ReplyNotVerified',
  /** Our side of the connection is not ACTIVE: nothing was sent. */
  connectionInactive: 'ConnectionInactive',
  /** The hub refused an event for good (it does not know the agent). */
  eventRefused: 'EventRefused',
} as const;
