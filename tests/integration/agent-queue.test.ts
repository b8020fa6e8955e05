import { issueApiToken } from '../../api/auth';
import { containerNameFor } from '../../activities/agent-sandbox';
import { agentStatusQuery, type AgentStatus } from '../../shared/agents';
import { FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

describe('the per-host agent limit', () => {
  // The first agent's model call hangs until it is killed; the second agent finishes at once.
  const model = new FakeAnthropic((recorded) =>
    JSON.stringify(recorded.body.messages[0]).includes('hold the slot') ? { ...reply.text('slow'), delayMs: 120_000 } : reply.text('Done.'),
  );
  let instance: TestInstance;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url, MAX_CONCURRENT_AGENTS: '1' });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  it('queues a spawn beyond the limit instead of failing or evicting, and runs it when a slot frees', async () => {
    const { token } = await issueApiToken(instance.prisma, `queue-${Date.now()}`);
    const headers = { authorization: `Bearer ${token}` };
    const repository = await createRepository();
    const spawn = (taskId: string, item: string) =>
      request(instance.baseUrl, 'POST', '/agents/spawn', { headers, json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [item] } } });

    const first = (await spawn('holder', 'hold the slot')).body as { agentId: string };
    const holder = instance.temporal.workflow.getHandle(first.agentId);
    await waitUntil(async () => (await holder.query(agentStatusQuery)).state === 'running');

    const second = await spawn('waiter', 'finish quickly');
    expect(second.status).toBe(202);
    expect(second.body).toMatchObject({ status: 'queued' });
    const { agentId } = second.body as { agentId: string };
    const waiter = instance.temporal.workflow.getHandle(agentId);

    await new Promise((resolve) => setTimeout(resolve, 4_000)); // longer than one retry interval
    expect((await waiter.query(agentStatusQuery)).state).toBe('queued');
    const status = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers });
    expect(status.body).toMatchObject({ state: 'queued' });
    expect(await instance.docker.getContainer(containerNameFor(agentId)).inspect().catch(() => null)).toBeNull();
    expect((await holder.query(agentStatusQuery)).state).toBe('running'); // not evicted

    await request(instance.baseUrl, 'POST', `/agents/${first.agentId}/kill`, { headers });
    expect(((await holder.result()) as AgentStatus).state).toBe('killed');
    expect(((await waiter.result()) as AgentStatus).state).toBe('completed');
    const transitions = await instance.prisma.agentTransition.findMany({ where: { agentId }, orderBy: { id: 'asc' } });
    expect(transitions.map((transition) => [transition.fromState, transition.toState])).toEqual([
      ['queued', 'running'],
      ['running', 'completed'],
    ]);
  });
});
