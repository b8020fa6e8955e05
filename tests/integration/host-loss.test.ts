import { issueApiToken } from '../../api/auth';
import { FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { admissionStateQuery, admissionWorkflowId } from '../../workflows/admission/contract';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { reportHostCapacity } from '../../temporal/admission-client';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/**
 * Bounded waits: an agent admitted to a host whose worker takes nothing from its queue (the host
 * died after its last report) ends failed with "host … unreachable" instead of waiting forever, and
 * its slot is given back.
 */
describe('an agent on a host that is gone', () => {
  const model = new FakeAnthropic(() => reply.text('Done.'));
  let instance: TestInstance;
  let token: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: '1',
    });
    token = (await issueApiToken(instance.prisma, `host-loss-${Date.now()}`)).token;
    repository = await createRepository();
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const spawn = async (taskId: string): Promise<string> => {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: ['finish'] } },
    });
    return (response.body as { agentId: string }).agentId;
  };

  it(
    'runs on the live host (the valid twin), then fails with "host … ' +
      'unreachable" on a host whose worker is gone, and frees the slot',
    async () => {
      const twin = await spawn('on-live-host');
      expect(((await instance.temporal.workflow.getHandle(twin).result()) as AgentStatus).state).toBe('completed');

      // A host that reported (more free slots than the live one, so it is chosen) and then died: nothing polls its
      // queue.
      await reportHostCapacity(instance.temporal, instance.taskQueue, { hostId: 'gone-host', capacity: 5 });
      const agentId = await spawn('on-dead-host');
      await expect(instance.temporal.workflow.getHandle(agentId).result()).rejects.toThrow();
      const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
      expect(row).toMatchObject({
        state: 'failed',
        error: 'host gone-host unreachable: its worker took no work within 1 minute',
      });
      const admission = await instance.temporal.workflow
        .getHandle(admissionWorkflowId(instance.taskQueue))
        .query(admissionStateQuery);
      expect(admission.holders.map((holder) => holder.agentId)).not.toContain(agentId);
    },
    150_000,
  );
});
