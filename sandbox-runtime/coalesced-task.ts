/**
 * Runs a task at most once at a time: a caller that comes while it runs gets the run queued behind it (shared by all
 * who came meanwhile), never the one already under way.
 */
export class CoalescedTask {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  get idle(): boolean {
    return this.running === null && this.queued === null;
  }

  run(task: () => Promise<void>): Promise<void> {
    if (!this.running) {
      const running = task().finally(() => {
        if (this.running === running) this.running = null;
      });
      this.running = running;
      return running;
    }
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.run(task);
      });
    return this.queued;
  }
}

/** The task's outcome, or the signal's reason as soon as it aborts (the task itself goes on). */
export async function untilAborted<T>(task: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return await task;
  signal.throwIfAborted();
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([task, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
