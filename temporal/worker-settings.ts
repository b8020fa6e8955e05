/**
 * On shutdown (SIGTERM, Ctrl-C), activities get this long to finish before they are cancelled, so a
 * worker stops in seconds even while a long tool call runs; the cancelled call is retried on another
 * worker, where its at-most-once claim reports the outcome as unknown instead of running it twice.
 */
export const WORKER_SHUTDOWN_GRACE_TIME = '5 seconds';

/**
 * Activities a worker runs at once, per task queue. Each live agent has at most one activity at a time
 * on each queue (a model call on the instance's, a tool call on its host's), so the SDK's default of
 * 100 would leave agents past the hundredth waiting for a slot on a host with a larger capacity; the
 * room above the capacity is for the short ones (state records, launches, slot requests).
 */
export const activitySlotsFor = (maxConcurrentAgents: number): number => Math.max(100, maxConcurrentAgents + 50);
