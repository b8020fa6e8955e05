import type { ChildProcess } from 'node:child_process';
import { issueApiToken } from '../../api/auth';
import { agentStatusQuery, type AgentStatus } from '../../workflows/agent-run/contract';
import { byWorkItem, byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';

/**
 * The only worker is SIGKILLed while one agent waits in its model call and another waits in the
 * queue for the host's only slot (the tool-call phase is worker-crash.test.ts). A new worker takes
 * over: both agents end completed, each with one sandbox, and the queued one is admitted, not lost.
 */
describe('chaos: the worker SIGKILLed while agents are queued and in a model call', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      // The first answer comes too late for the killed worker; the retry on the new one is answered at once.
      'think slowly': byTurn([[{ ...reply.text('never seen'), delayMs: 60_000 }, reply.text('Thought it through.')]]),
    }),
  );
  let instance: TestInstance;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ MAX_CONCURRENT_AGENTS: '1' }, { worker: false });
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  it('completes both agents on the new worker, one sandbox each, the queued one admitted afterwards', async () => {
    const { token } = await issueApiToken(instance.prisma, `worker-kill-phases-${Date.now()}`);
    const repository = await createRepository();
    const settings = { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url };
    workers.push(startWorkerProcess(instance.config, settings));
    const spawn = async (taskId: string, workItem: string) => {
      const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
        headers: bearer(token),
        json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] } },
      });
      expect(response.status).toBe(202);
      return (response.body as { agentId: string }).agentId;
    };

    const thinking = await spawn('thinking', 'think slowly');
    const thinkingSandboxes = sampleContainers(instance.docker, thinking);
    await waitUntil(
      () =>
        Promise.resolve(
          model.requests.some((recorded) => JSON.stringify(recorded.body.messages[0]).includes('think slowly')),
        ),
      60_000,
    );
    const queued = await spawn('queued', 'finish at once');
    const queuedSandboxes = sampleContainers(instance.docker, queued);
    await waitUntil(
      async () => (await instance.temporal.workflow.getHandle(queued).query(agentStatusQuery)).state === 'queued',
      30_000,
    );
    // The workflow knows it first; the row follows once its state activity has committed.
    await waitUntil(
      async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: queued } })).state === 'queued',
      10_000,
    );
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: queued } })).toMatchObject({ state: 'queued' });

    workers[0]!.kill('SIGKILL');
    workers.push(startWorkerProcess(instance.config, settings));

    // The model call is retried once its heartbeat timeout (30 s) says the old worker is gone.
    for (const agentId of [thinking, queued]) {
      expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
      expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'completed',
      });
    }
    expect(await thinkingSandboxes.stop()).toBe(1);
    expect(await queuedSandboxes.stop()).toBe(1);
    for (const agentId of [thinking, queued]) expect(await containersOf(instance.docker, agentId)).toBe(0);
    // The queued agent was admitted only after the slot freed.
    const thinkingEnd = (await instance.prisma.agent.findUniqueOrThrow({ where: { id: thinking } })).finishedAt!;
    const queuedStart = (
      await instance.prisma.agentTransition.findFirstOrThrow({ where: { agentId: queued, toState: 'running' } })
    ).at;
    expect(queuedStart.getTime()).toBeGreaterThanOrEqual(thinkingEnd.getTime() - 1_000);
  });
});
