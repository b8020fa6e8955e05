/**
 * A per-key sliding-window counter in this process's memory: at most `limit` takes per key within
 * `windowMs`. For limits that guard this process's own work (such as outbound fetches an unauthenticated
 * caller could trigger); limits that must hold across processes count rows in PostgreSQL instead.
 */
export class SlidingWindowLimiter {
  private readonly takes = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Counts one take for `key`; false when the key is over its limit (nothing is counted then). */
  take(key: string, now = Date.now()): boolean {
    const recent = (this.takes.get(key) ?? []).filter((at) => at > now - this.windowMs);
    if (recent.length >= this.limit) {
      this.takes.set(key, recent);
      return false;
    }
    recent.push(now);
    this.takes.set(key, recent);
    if (this.takes.size > 10_000) this.forgetIdle(now);
    return true;
  }

  private forgetIdle(now: number): void {
    for (const [key, times] of this.takes) if (times.every((at) => at <= now - this.windowMs)) this.takes.delete(key);
  }
}
