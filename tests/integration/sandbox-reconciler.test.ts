import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { instanceLabel, reconcileSandboxes } from '../../workers/jobs/sandbox-reconciler';
import { hardenedContainerSpec } from '../../sandbox-runtime/container-spec';
import { SANDBOX_CHECK_WORKFLOW } from '../../workflows/sandbox-check/contract';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

describe('the sandbox reconciler', () => {
  const model = new FakeAnthropic(byTurn([{ ...reply.text('slow'), delayMs: 60_000 }]));
  let instance: TestInstance;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  async function startContainer(name: string, workflowId: string, owner: string): Promise<void> {
    const workspace = await mkdtemp(path.join(os.tmpdir(), 'reconcile-'));
    const spec = hardenedContainerSpec({
      name,
      image: instance.config.SANDBOX_IMAGE,
      command: ['sleep', 'infinity'],
      workflowId,
      instance: owner,
      workspaceHostPath: workspace,
    });
    await (await instance.docker.createContainer(spec)).start();
  }

  const exists = (name: string): Promise<boolean> =>
    instance.docker
      .getContainer(name)
      .inspect()
      .then(() => true)
      .catch(() => false);

  it('removes containers whose workflow is gone or closed, keeps live ones and other instances’', async () => {
    const mine = instanceLabel(instance.config.TEMPORAL_NAMESPACE, instance.config.TASK_QUEUE);
    const { token } = await issueApiToken(instance.prisma, `reconcile-${Date.now()}`);
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: { authorization: `Bearer ${token}` },
      json: {
        taskId: 'live',
        agentType: 'worker',
        context: { repository: await createRepository(), branch: 'main', workItems: ['wait'] },
      },
    });
    const { agentId } = spawned.body as { agentId: string };
    await waitUntil(() => exists(containerNameFor(agentId)));

    const closed = await instance.temporal.workflow.start(SANDBOX_CHECK_WORKFLOW, {
      taskQueue: 'nobody-polls-this',
      workflowId: `closed-${Date.now()}`,
      args: [{ checkId: 'x' }],
    });
    await closed.terminate('test');
    const suffix = Date.now();
    await startContainer(`orphan-${suffix}`, `never-existed-${suffix}`, mine);
    await startContainer(`closed-${suffix}`, closed.workflowId, mine);
    await startContainer(`foreign-${suffix}`, `never-existed-${suffix}`, 'other-namespace/other-queue');

    const result = await reconcileSandboxes(instance.docker, instance.temporal, mine);
    expect(result.removed.sort()).toEqual([`closed-${suffix}`, `orphan-${suffix}`]);
    expect(result.kept).toContain(containerNameFor(agentId));
    expect(await exists(`orphan-${suffix}`)).toBe(false);
    expect(await exists(`closed-${suffix}`)).toBe(false);
    expect(await exists(containerNameFor(agentId))).toBe(true);
    expect(await exists(`foreign-${suffix}`)).toBe(true);

    await instance.docker.getContainer(`foreign-${suffix}`).remove({ force: true });
    await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await instance.temporal.workflow.getHandle(agentId).result();
    expect(await exists(containerNameFor(agentId))).toBe(false);
  });
});
