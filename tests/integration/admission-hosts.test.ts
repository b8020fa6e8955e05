import type { ChildProcess } from 'node:child_process';
import { issueApiToken } from '../../api/auth';
import { agentStatusQuery, type AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';

/**
 * Capacity is per host: two worker processes of one host share its slots, and a second host adds its
 * own. Hosts here are worker processes with their own HOST_ID, as on separate machines.
 */
describe('admission across worker processes and hosts', () => {
  const model = new FakeAnthropic(
    byWorkItem({ 'hold a slot': byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 120' } })]) }),
  );
  let instance: TestInstance;
  let token: string;
  let repository: string;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ MAX_CONCURRENT_AGENTS: '1' }, { worker: false });
    ({ token } = await issueApiToken(instance.prisma, `admission-hosts-${Date.now()}`));
    repository = await createRepository();
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  const startWorker = (hostId: string) =>
    workers.push(
      startWorkerProcess(instance.config, {
        HOST_ID: hostId,
        ANTHROPIC_API_KEY: 'test-key',
        ANTHROPIC_BASE_URL: model.url,
      }),
    );
  async function spawn(taskId: string): Promise<{ agentId: string; status: string }> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: ['hold a slot'] } },
    });
    expect(response.status).toBe(202);
    return response.body as { agentId: string; status: string };
  }
  const state = async (agentId: string) =>
    (await instance.temporal.workflow.getHandle(agentId).query(agentStatusQuery)).state;
  const running = async (agentId: string) =>
    (await instance.prisma.toolCall.count({ where: { agentId, status: 'started' } })) > 0;
  async function kill(agentId: string): Promise<void> {
    await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: bearer(token) });
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('killed');
  }

  it('gives two worker processes of one host its one slot, not one each', async () => {
    startWorker('shared-host');
    startWorker('shared-host');
    const first = await spawn('one-host-1');
    await waitUntil(() => running(first.agentId), 60_000);
    const second = await spawn('one-host-2');
    expect(second.status).toBe('queued');
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // both processes have reported meanwhile
    expect(await state(second.agentId)).toBe('queued');
    const mine = async () =>
      (
        await instance.prisma.agent.findMany({
          where: { id: { in: [first.agentId, second.agentId] }, hostQueue: { not: null } },
        })
      ).length;
    expect(await mine()).toBe(1);

    await kill(first.agentId);
    await waitUntil(() => running(second.agentId), 60_000);
    expect(await state(second.agentId)).toBe('running');
    await kill(second.agentId);
  });

  it('adds a second host’s slot: two agents run at once, on different hosts, and a third waits', async () => {
    startWorker('second-host');
    await waitUntil(
      async () => (await instance.prisma.workerHost.count({ where: { hostId: 'second-host' } })) === 1,
      30_000,
    );
    const agents = [await spawn('two-hosts-1'), await spawn('two-hosts-2')];
    for (const { agentId } of agents) await waitUntil(() => running(agentId), 60_000);
    const third = await spawn('two-hosts-3');
    expect(third.status).toBe('queued');
    const rows = await instance.prisma.agent.findMany({ where: { id: { in: agents.map((agent) => agent.agentId) } } });
    expect(new Set(rows.map((row) => row.hostQueue)).size).toBe(2);

    await kill(agents[0]!.agentId);
    await waitUntil(() => running(third.agentId), 60_000);
    expect(await state(third.agentId)).toBe('running');
    for (const agentId of [agents[1]!.agentId, third.agentId]) await kill(agentId);
  });
});
