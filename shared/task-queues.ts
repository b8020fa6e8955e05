/**
 * Task-queue names, shared by the API (which starts workflows) and the worker (which polls them).
 * Sandbox activities will later get a per-host queue derived from these.
 */
export const ORCHESTRATOR_TASK_QUEUE = 'agent-orchestrator';
