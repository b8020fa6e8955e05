/**
 * Task-queue names, shared by the API (which starts workflows) and the worker (which polls them).
 * Workflows and host-independent activities use the orchestrator queue; sandbox activities use the
 * queue of the host whose Docker engine owns the container.
 */
/** The default of the TASK_QUEUE setting. */
export const ORCHESTRATOR_TASK_QUEUE = 'agent-orchestrator';

export function sandboxHostQueue(hostId: string): string {
  return `sandbox-host-${hostId}`;
}
