import { issueApiToken } from '../../api/auth';
import { callbackVerifier } from '../../client/callback-receiver';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { sessionCallbacksWorkflowId } from '../../workflows/session-callbacks/contract';
import { TERMINAL_STATES } from '../../shared/vocabulary';
import { CallbackReceiver } from '../helpers/callback-receiver';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { sample } from '../helpers/metrics';
import { waitUntil } from '../helpers/wait';
import { workerProcess, type WorkerProcess } from '../helpers/worker-process';

/**
 * How many live sessions: enough to outnumber the instance queue's 100 activity slots. LOAD_SESSIONS=500 for the full
 * figure.
 */
const SESSIONS = Number(process.env.LOAD_SESSIONS ?? 110);
const SLOT_SAMPLE_MS = 250;

/**
 * Many live gateway sessions with callbacks on an instance of capacity 2, as a gateway creates them:
 * every agent must finish and every event reach the receiver in order, while the worker keeps free
 * activity slots on the instance queue (a delivery that held a slot while it waited stopped the whole
 * instance past about 100 sessions). The worker is restarted (SIGTERM, as a deploy does) midway.
 */
describe('hundreds of live sessions on an instance of capacity 2', () => {
  const model = new FakeAnthropic(byTurn([reply.text('Done.')]));
  const audience = 'https://gateway.load.test';
  const receiver = new CallbackReceiver(() => callbackVerifier({ orchestratorUrl: instance.baseUrl, audience }));
  let instance: TestInstance;
  let worker: WorkerProcess;
  let token: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    const settings = { ANTHROPIC_API_KEY: 'load-key', ANTHROPIC_BASE_URL: model.url, MAX_CONCURRENT_AGENTS: '2' };
    instance = await startTestInstance(settings, { worker: false });
    worker = await workerProcess(instance.config, settings);
    await worker.start();
    ({ token } = await issueApiToken(instance.prisma, `load-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Load\n' });
    await receiver.start();
  });
  afterAll(async () => {
    await worker.stop('SIGKILL');
    await receiver.stop();
    await instance.stop();
    await model.stop();
  });

  /** The fewest free activity slots the worker reported on the instance queue while `work` ran. */
  async function fewestFreeSlots(work: () => Promise<void>): Promise<{ fewest: number; samples: number }> {
    const seen = { fewest: Infinity, samples: 0, on: true };
    const sampling = (async () => {
      while (seen.on) {
        const text = await worker.metrics();
        if (text.includes('temporal_worker_task_slots_available')) {
          const free = sample(text, 'temporal_worker_task_slots_available', {
            worker_type: 'ActivityWorker',
            task_queue: instance.taskQueue,
          });
          seen.fewest = Math.min(seen.fewest, free);
          seen.samples += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, SLOT_SAMPLE_MS));
      }
    })();
    try {
      await work();
    } finally {
      seen.on = false;
      await sampling;
    }
    return { fewest: seen.fewest, samples: seen.samples };
  }

  it(
    `finishes ${SESSIONS} agents and delivers every event in order, with ` +
      `worker slots to spare, through a worker restart`,
    async () => {
      const sessionIds: string[] = [];
      const slots = await fewestFreeSlots(async () => {
        for (let start = 0; start < SESSIONS; start += 20) {
          const spawned = await Promise.all(
            Array.from({ length: Math.min(20, SESSIONS - start) }, async (_, offset) => {
              const id = `load-${start + offset}`;
              const response = await request(instance.baseUrl, 'POST', '/orchestrator/sessions/spawn', {
                headers: { authorization: `Bearer ${token}` },
                json: {
                  task: { id, title: `Task ${id}`, repository, branch: 'main' },
                  callback_url: receiver.url,
                  callback_audience: audience,
                },
              });
              if (response.status !== 202) throw new Error(`spawn ${id}: ${response.status} ${response.text}`);
              return (response.body as { sessionId: string }).sessionId;
            }),
          );
          sessionIds.push(...spawned);
        }
        const finished = (): Promise<number> =>
          instance.prisma.agent.count({ where: { id: { in: sessionIds }, state: { in: [...TERMINAL_STATES] } } });
        // A deploy midway: the worker drains and a new one takes over.
        await waitUntil(async () => (await finished()) >= SESSIONS / 3, SESSIONS * 5_000, 1_000);
        await worker.stop('SIGTERM');
        await worker.start();
        await waitUntil(async () => (await finished()) === SESSIONS, SESSIONS * 5_000, 1_000);
        await waitUntil(
          () =>
            Promise.resolve(
              sessionIds.every((id) =>
                ['completed', 'failed', 'killed', 'timed_out'].includes(
                  String(receiver.eventsOf(id).at(-1)?.data.state),
                ),
              ),
            ),
          120_000,
          500,
        );
      });

      const states = await instance.prisma.agent.groupBy({
        by: ['state'],
        where: { id: { in: sessionIds } },
        _count: true,
      });
      expect(states.map((group) => [group.state, group._count])).toEqual([['completed', SESSIONS]]);
      expect(slots.samples).toBeGreaterThan(0);
      expect(slots.fewest).toBeGreaterThan(0);
      // Every event of every session reached the receiver, in order, without a gap.
      for (const sessionId of sessionIds) {
        const logged = await instance.prisma.agentEvent.findMany({
          where: { agentId: sessionId },
          orderBy: { seq: 'asc' },
          select: { seq: true, type: true },
        });
        const delivered = receiver.eventsOf(sessionId);
        expect([sessionId, delivered.map((event) => [event.sequence, event.type])]).toEqual([
          sessionId,
          logged.map((event) => [event.seq, event.type]),
        ]);
        expect(delivered.at(-1)?.data).toMatchObject({ type: 'state', state: 'completed' });
      }
      expect(receiver.outOfOrderSessions()).toEqual([]);
      expect(receiver.refusals).toEqual([]);
      // Each delivery ended once its final event was acknowledged.
      const deliveries = await Promise.all(
        sessionIds.map(
          async (id) =>
            (await instance.temporal.workflow.getHandle(sessionCallbacksWorkflowId(id)).describe()).status.name,
        ),
      );
      expect(new Set(deliveries)).toEqual(new Set(['COMPLETED']));
    },
    30 * 60_000,
  );
});
