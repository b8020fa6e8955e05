import { CoalescedTask, untilAborted } from '../../sandbox-runtime/coalesced-task';

/** One run at a time; who comes while it runs shares the next run, which starts after they came. */
describe('coalesced task', () => {
  it('runs once for the first caller and once more for everyone who came while it ran', async () => {
    const task = new CoalescedTask();
    const starts: number[] = [];
    let release = (): void => undefined;
    const work = (): Promise<void> => {
      starts.push(starts.length);
      return starts.length === 1 ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
    };
    const first = task.run(work);
    const during = Array.from({ length: 10 }, () => task.run(work));
    expect(starts).toEqual([0]); // the later callers wait for a run that starts after them
    release();
    await Promise.all([first, ...during]);
    expect(starts).toEqual([0, 1]);
    expect(task.idle).toBe(true);
    await task.run(work);
    expect(starts).toEqual([0, 1, 2]);
  });

  it('gives the queued callers their own run after a failed one', async () => {
    const task = new CoalescedTask();
    let calls = 0;
    const failing = task.run(() => Promise.reject(new Error(`run ${++calls} failed`)));
    const queued = task.run(() => {
      calls += 1;
      return Promise.resolve();
    });
    await expect(failing).rejects.toThrow('run 1 failed');
    await expect(queued).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });

  it("stops a caller's wait on its signal, not the task", async () => {
    let finished = false;
    const work = new Promise<void>((resolve) => setTimeout(resolve, 50)).then(() => {
      finished = true;
    });
    const controller = new AbortController();
    const waiting = untilAborted(work, controller.signal);
    controller.abort(new Error('killed'));
    await expect(waiting).rejects.toThrow('killed');
    await work;
    expect(finished).toBe(true);
    await expect(untilAborted(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7);
  });
});
