import { getExternalWorkflowHandle, ParentClosePolicy, startChild } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  agentLifecycleSignal,
  HUB_EVENT_DELIVERY_WORKFLOW,
  hubEventDeliveryWorkflowId,
} from '../hub-event-delivery/contract';
import type { AgentRunInput, AgentStatus } from './contract';
import { lifecycleSnapshot } from './run-state';

/** How long a hub's events may keep being delivered after the agent's deadline. */
const HUB_EVENTS_GRACE_MS = 3600 * 1000;

/**
 * An agent a hub spawned tells it every state change through a delivery workflow that outlives this
 * one (an abandoned child, started by the chain's first run). Returns what tells it; a no-op otherwise.
 */
export async function startHubEvents(
  input: AgentRunInput,
  status: AgentStatus,
  deadlineAt: number,
): Promise<() => Promise<void>> {
  const { agentId, origin } = input;
  if (!origin) return () => Promise.resolve();
  const workflowId = hubEventDeliveryWorkflowId(agentId);
  if (!input.resume) {
    const delivery = { agentId, origin, expiresAt: deadlineAt + HUB_EVENTS_GRACE_MS };
    const abandoned = { workflowId, args: [delivery], parentClosePolicy: ParentClosePolicy.ABANDON };
    await startChild(HUB_EVENT_DELIVERY_WORKFLOW, abandoned).catch((error: unknown) => {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    });
  }
  const hubEvents = getExternalWorkflowHandle(workflowId);
  // A delivery workflow that already ended (expired) cannot be told; the hub asks with agent.status.
  return async () => {
    await hubEvents.signal(agentLifecycleSignal, lifecycleSnapshot(status)).catch(() => undefined);
  };
}
