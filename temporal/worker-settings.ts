/**
 * On shutdown (SIGTERM, Ctrl-C), activities get this long to finish before they are cancelled, so a
 * worker stops in seconds even while a long tool call runs; the cancelled call is retried on another
 * worker, where its at-most-once claim reports the outcome as unknown instead of running it twice.
 */
export const WORKER_SHUTDOWN_GRACE_TIME = '5 seconds';
