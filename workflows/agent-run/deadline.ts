import { CancellationScope, sleep } from '@temporalio/workflow';

/**
 * The per-task timeout as one workflow timer, which stops while the run waits for an operator (unless the task says
 * waits count): pausing cancels the timer and resuming starts one for what was left, so a wait of days adds two timer
 * events, not one per hour.
 */
export class RunDeadline {
  private timer: CancellationScope | null = null;
  private pausedAt: number | null = null;

  constructor(
    private endsAt: number,
    private readonly summary: string,
    private readonly onReached: () => void,
  ) {}

  /** Epoch ms at which the run times out, as things stand (a pause in progress counts as over now). */
  get at(): number {
    return this.pausedAt === null ? this.endsAt : this.endsAt + (Date.now() - this.pausedAt);
  }

  start(): void {
    const timer = new CancellationScope();
    this.timer = timer;
    timer
      .run(async () => {
        await sleep(Math.max(1, this.endsAt - Date.now()), { summary: this.summary });
        this.onReached();
      })
      .catch(() => undefined); // cancelled: the run ended first, or a wait paused the clock
  }

  pause(): void {
    if (this.pausedAt !== null || this.timer === null) return;
    this.pausedAt = Date.now();
    this.timer.cancel();
    this.timer = null;
  }

  resume(): void {
    if (this.pausedAt === null) return;
    this.endsAt += Date.now() - this.pausedAt;
    this.pausedAt = null;
    this.start();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
