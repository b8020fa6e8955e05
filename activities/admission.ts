import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { SlotAnswer, SlotRequest } from '../workflows/admission/contract';
import { requestAdmission } from '../temporal/admission-client';

/** Below the activity's start-to-close timeout: a request that gets no answer is retried. */
const REQUEST_DEADLINE_MS = 20_000;

/** The agent's side of admission, and the admission workflow's check for slots held by ended workflows. */
export function createAdmissionActivities() {
  return {
    /** Asks the instance's admission workflow (on this activity's task queue) for a slot; idempotent. */
    async requestSlot(request: SlotRequest): Promise<SlotAnswer> {
      const { client, info, cancellationSignal } = Context.current();
      // The update waits for the admission workflow; a worker shutting down (or a kill) must not wait with it.
      return await client.withAbortSignal(cancellationSignal, () =>
        client.withDeadline(Date.now() + REQUEST_DEADLINE_MS, () => requestAdmission(client, info.taskQueue, request)),
      );
    },

    /** Which of these agents' workflows are no longer running (closed, terminated, or never started). */
    async endedAgents(agentIds: string[]): Promise<string[]> {
      const { client } = Context.current();
      const ended: string[] = [];
      for (const agentId of agentIds) {
        try {
          const { status } = await client.workflow.getHandle(agentId).describe();
          if (status.name !== 'RUNNING') ended.push(agentId);
        } catch (error) {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
          ended.push(agentId);
        }
        Context.current().heartbeat();
      }
      return ended;
    },
  };
}
