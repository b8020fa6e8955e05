import type { RemoteProgress } from '../../shared/federated-agent-schemas';
import { signal } from '../../shared/temporal-definitions';
import type { AgentState } from '../../shared/vocabulary';

/**
 * The spoke's hubEventDelivery workflow: it pushes the state changes of an agent a hub spawned to
 * that hub, in order, as signed agent.lifecycle EVENTs. agentRun signals it every change.
 */
export const HUB_EVENT_DELIVERY_WORKFLOW = 'hubEventDelivery';

export const hubEventDeliveryWorkflowId = (agentId: string): string => `${agentId}-hub-events`;

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

export interface HubEventDeliveryResult {
  delivered: number;
  undelivered: number;
}

export const agentLifecycleSignal = signal<[LifecycleSnapshot]>('lifecycle');
