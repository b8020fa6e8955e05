import { issueApiToken } from '../../api/auth';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { admissionWorkflowId } from '../../workflows/admission/contract';
import { agentStatusQuery, type AgentStatus } from '../../workflows/agent-run/contract';
import { FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { createRepository } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

describe('admission: the per-host agent limit and the priority queue', () => {
  // The first agent's model call hangs until it is killed; the second agent finishes at once.
  const model = new FakeAnthropic((recorded) =>
    JSON.stringify(recorded.body.messages[0]).includes('hold the slot')
      ? { ...reply.text('slow'), delayMs: 120_000 }
      : reply.text('Done.'),
  );
  let instance: TestInstance;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: '1',
    });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  it(
    'queues spawns beyond the limit without polling, and admits them by ' +
      'priority, then first come, when the slot frees',
    async () => {
      const { token } = await issueApiToken(instance.prisma, `queue-${Date.now()}`);
      const headers = { authorization: `Bearer ${token}` };
      const repository = await createRepository();
      const spawn = (taskId: string, item: string, priority?: number) =>
        request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers,
          json: {
            taskId,
            agentType: 'worker',
            context: { repository, branch: 'main', workItems: [item] },
            ...(priority ? { priority } : {}),
          },
        });

      const first = (await spawn('holder', 'hold the slot')).body as { agentId: string; status: string };
      expect(first.status).toBe('spawning');
      const holder = instance.temporal.workflow.getHandle(first.agentId);
      await waitUntil(async () => (await holder.query(agentStatusQuery)).state === 'running');

      // Arrival order low, normal, high, normal: admission order must be high, normal (first), normal (second), low.
      const waiting: Record<string, string> = {};
      for (const [name, priority] of [
        ['low', 2],
        ['normal-1', undefined],
        ['high', 9],
        ['normal-2', 5],
      ] as const) {
        const response = await spawn(name, 'finish quickly', priority);
        expect([name, response.status, (response.body as { status: string }).status]).toEqual([name, 202, 'queued']);
        waiting[name] = (response.body as { agentId: string }).agentId;
      }
      const waiters = Object.values(waiting).map((agentId) => instance.temporal.workflow.getHandle(agentId));
      await waitUntil(async () =>
        (await Promise.all(waiters.map((waiter) => waiter.query(agentStatusQuery)))).every(
          (status) => status.state === 'queued',
        ),
      );
      // Settled: the slot request is recorded and nothing is pending, so the workflow only waits for its signal.
      await waitUntil(async () =>
        (await Promise.all(waiters.map((waiter) => waiter.describe()))).every(
          ({ raw }) => (raw.pendingActivities ?? []).length === 0 && !raw.pendingWorkflowTask,
        ),
      );

      // Waiting adds nothing to a queued agent's history (the old code polled every 3 s, about 11 events a poll).
      const historyLengths = async () =>
        Promise.all(waiters.map(async (waiter) => (await waiter.describe()).historyLength));
      const before = await historyLengths();
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      expect(await historyLengths()).toEqual(before);
      const status = await request(instance.baseUrl, 'GET', `/agents/${waiting.low}/status`, { headers });
      expect(status.body).toMatchObject({ state: 'queued' });
      for (const agentId of Object.values(waiting))
        expect(
          await instance.docker
            .getContainer(containerNameFor(agentId))
            .inspect()
            .catch(() => null),
        ).toBeNull();
      expect((await holder.query(agentStatusQuery)).state).toBe('running'); // not evicted

      await request(instance.baseUrl, 'POST', `/agents/${first.agentId}/kill`, { headers });
      expect(((await holder.result()) as AgentStatus).state).toBe('killed');
      for (const waiter of waiters) expect(((await waiter.result()) as AgentStatus).state).toBe('completed');
      await recordHistoryIfRequested(waiting.high ?? '', 'agent-run-queued-then-admitted');
      // Transition ids grow in the order the rows were written.
      const admittedAt = async (agentId: string) =>
        (await instance.prisma.agentTransition.findFirstOrThrow({ where: { agentId, fromState: 'queued' } })).id;
      const order = await Promise.all(
        Object.entries(waiting).map(async ([name, agentId]) => ({ name, at: await admittedAt(agentId) })),
      );
      expect(order.sort((a, b) => a.at - b.at).map((entry) => entry.name)).toEqual([
        'high',
        'normal-1',
        'normal-2',
        'low',
      ]);
      const transitions = await instance.prisma.agentTransition.findMany({
        where: { agentId: waiting.high },
        orderBy: { id: 'asc' },
      });
      expect(transitions.map((transition) => [transition.fromState, transition.toState])).toEqual([
        ['spawning', 'queued'],
        ['queued', 'spawning'],
        ['spawning', 'running'],
        ['running', 'completed'],
      ]);
    },
  );

  it('admits a queued agent whose grant never came: it asks again on a timer', async () => {
    const { token } = await issueApiToken(instance.prisma, `queue-lost-${Date.now()}`);
    const headers = { authorization: `Bearer ${token}` };
    const repository = await createRepository();
    const spawn = async (taskId: string, item: string) =>
      (
        await request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers,
          json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [item] } },
        })
      ).body as { agentId: string; status: string };
    const holder = await spawn('lost-holder', 'hold the slot');
    await waitUntil(
      async () =>
        (await instance.temporal.workflow.getHandle(holder.agentId).query(agentStatusQuery)).state === 'running',
    );
    const waiter = await spawn('lost-waiter', 'finish quickly');
    expect(waiter.status).toBe('queued');
    const handle = instance.temporal.workflow.getHandle(waiter.agentId);
    await waitUntil(async () => (await handle.query(agentStatusQuery)).state === 'queued');

    // The admission workflow loses everything it knew (here: terminated); the slot it would have granted frees
    // meanwhile.
    await instance.temporal.workflow.getHandle(admissionWorkflowId(instance.taskQueue)).terminate('lost its state');
    await request(instance.baseUrl, 'POST', `/agents/${holder.agentId}/kill`, { headers });
    expect(((await instance.temporal.workflow.getHandle(holder.agentId).result()) as AgentStatus).state).toBe('killed');

    // No grant will ever come: the waiter asks again by itself and runs.
    expect(((await handle.result()) as AgentStatus).state).toBe('completed');
    const history = (await handle.fetchHistory()).events ?? [];
    const asked = history.filter(
      (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'requestSlot',
    ).length;
    expect(asked).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('refuses a priority outside 1 to 10 before anything starts', async () => {
    const { token } = await issueApiToken(instance.prisma, `queue-bad-${Date.now()}`);
    const repository = await createRepository();
    const agents = await instance.prisma.agent.count();
    for (const priority of [0, 11, 2.5, '5']) {
      const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
        headers: { authorization: `Bearer ${token}` },
        json: {
          taskId: 'bad-priority',
          agentType: 'worker',
          context: { repository, branch: 'main', workItems: ['x'] },
          priority,
        },
      });
      expect([priority, response.status, (response.body as { error?: { code?: string } }).error?.code]).toEqual([
        priority,
        400,
        'validation_failed',
      ]);
    }
    expect(await instance.prisma.agent.count()).toBe(agents);
  });
});
