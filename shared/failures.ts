/**
 * Failure types the activities raise and the workflows read (a leaf module: safe for workflow code).
 */

/** An activity whose worker shut down under it (a deploy): retried on the next worker, never the task's fault. */
export const WORKER_SHUTDOWN_FAILURE = 'WorkerShutdown';
