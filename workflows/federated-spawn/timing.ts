/** When the hub tries again: pure, so the schedule is tested without a worker. */

/** Spawn delivery backs off from 1 s to 30 s between attempts: a spoke back from an outage hears again within 30 s. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

export const backoffMs = (attempt: number): number =>
  Math.min(RETRY_FIRST_MS * 2 ** Math.min(attempt - 1, 10), RETRY_MAX_MS);

/**
 * An undelivered kill, and a question the spoke did not answer, are tried again within seconds (not at
 * the poll interval), so they land soon after the link's return; after 30 tries, every 30 s.
 */
export const retrySoonMs = (attempt: number): number =>
  Math.min(backoffMs(attempt), attempt <= 30 ? 5_000 : RETRY_MAX_MS);

/** Milliseconds the hub waits past the task's timeout for the spoke's own verdict before deciding itself. */
export const timeoutGraceMs = (timeoutMs: number): number =>
  Math.min(60_000, Math.max(5_000, Math.round(timeoutMs / 10)));
