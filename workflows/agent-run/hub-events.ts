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
 * The child starts beside the launch, not before it (waiting for its start cost the spawn a workflow task):
 * the first tell waits for it.
 */
export function startHubEvents(input: AgentRunInput, status: AgentStatus, deadlineAt: number): () => Promise<void> {
  const { agentId, origin } = input;
  if (!origin) return () => Promise.resolve();
  const workflowId = hubEventDeliveryWorkflowId(agentId);
  let started: Promise<void> = Promise.resolve();
  if (!input.resume) {
    const delivery = { agentId, origin, expiresAt: deadlineAt + HUB_EVENTS_GRACE_MS };
    const abandoned = { workflowId, args: [delivery], parentClosePolicy: ParentClosePolicy.ABANDON };
    started = startChild(HUB_EVENT_DELIVERY_WORKFLOW, abandoned).then(
      () => undefined,
      (error: unknown) => {
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      },
    );
    started.catch(() => undefined); // seen by the first tell, which fails the run as the start itself did
  }
  const hubEvents = getExternalWorkflowHandle(workflowId);
  // A delivery workflow that already ended (expired) cannot be told; the hub asks with agent.status.
  return async () => {
    await started;
    await hubEvents.signal(agentLifecycleSignal, lifecycleSnapshot(status)).catch(() => undefined);
  };
}
