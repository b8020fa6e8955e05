import { createWorkerMetrics } from '../../platform/metrics';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { reconcileAgentRows } from '../../workers/jobs/agent-reconciler';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { reconcileSandboxes } from '../../workers/jobs/sandbox-reconciler';
import { isMounted } from '../../sandbox-runtime/workspace';
import { byWorkItem, byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { agentStatusQuery } from '../../workflows/agent-run/contract';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

/**
 * Rows and workflows agree: an agent whose workflow never started (the API stopped between the row
 * and the workflow) or was terminated from the Web UI/CLI gets the terminal state that matches, with
 * the reason, from the reconciler the worker runs every 30 s; a running agent is never touched.
 */
describe('agent row reconciliation', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'run a long command': byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 120' } })]),
    }),
  );
  let instance: TestInstance;
  let token: string;
  let workspaceId: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    ({ token, workspaceId } = await issueApiToken(instance.prisma, `reconcile-${Date.now()}`));
    repository = await createRepository();
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  async function runningAgent(taskId: string): Promise<string> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: ['run a long command'] } },
    });
    const { agentId } = response.body as { agentId: string };
    await waitUntil(
      async () => (await instance.temporal.workflow.getHandle(agentId).query(agentStatusQuery)).lastTool === 'bash',
    );
    return agentId;
  }
  const inThePast = (ms: number) => new Date(Date.now() + 60_000 + ms); // the reconciler's "now", past the start grace

  it('leaves a running agent alone (the valid twin), and fails a row whose workflow never started', async () => {
    const running = await runningAgent('twin');
    const orphanId = `agent-${randomUUID()}`;
    await instance.prisma.agent.create({
      data: {
        id: orphanId,
        workspaceId,
        taskId: 'never-started',
        agentType: 'worker',
        state: 'spawning',
        context: { repository, branch: 'main', workItems: ['x'] },
        options: {},
      },
    });

    const reconciled = await reconcileAgentRows(
      instance.prisma,
      instance.temporal,
      createWorkerMetrics(),
      inThePast(0).getTime(),
    );
    expect(reconciled.map((agent) => agent.agentId)).not.toContain(running);
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: running } })).toMatchObject({
      state: 'running',
    });
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: orphanId } })).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/never started/) as string,
    });
    // The task is free again: the one-live-agent rule no longer blocks it.
    const again = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId: 'never-started', agentType: 'worker', context: { repository, branch: 'main', workItems: ['x'] } },
    });
    expect(again.body).toMatchObject({ existing: false });
    await request(instance.baseUrl, 'POST', `/agents/${running}/kill`, { headers: bearer(token) });
  });

  it(
    'marks an agent whose workflow was terminated from the CLI killed, with ' +
      'the reason, and its container is removed',
    async () => {
      const agentId = await runningAgent('terminated');
      await instance.temporal.workflow.getHandle(agentId).terminate('stuck, terminated by an operator');
      expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'running',
      });

      const reconciled = await reconcileAgentRows(
        instance.prisma,
        instance.temporal,
        createWorkerMetrics(),
        inThePast(0).getTime(),
      );
      expect(reconciled).toContainEqual({
        agentId,
        state: 'killed',
        reason: expect.stringMatching(/terminated/) as string,
      });
      expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'killed',
        error: expect.stringMatching(/terminated/) as string,
      });
      const workspacesDir = path.join(instance.config.DATA_DIR, 'workspaces');
      await reconcileSandboxes(
        instance.docker,
        instance.temporal,
        `${instance.config.TEMPORAL_NAMESPACE}/${instance.taskQueue}`,
        workspacesDir,
      );
      expect(
        await instance.docker
          .getContainer(containerNameFor(agentId))
          .inspect()
          .catch(() => null),
      ).toBeNull();
      expect(await isMounted(path.join(workspacesDir, agentId))).toBe(false);

      // Terminal states are final: a second pass changes nothing.
      expect(
        await reconcileAgentRows(instance.prisma, instance.temporal, createWorkerMetrics(), inThePast(0).getTime()),
      ).not.toContainEqual(expect.objectContaining({ agentId }));
    },
  );
});
