import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers, sandboxPaused, spawnWaitingForApproval } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startPrivateTemporal, type RestartableService } from '../helpers/private-services';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';
import { startWorkerProcess } from '../helpers/processes';

/** The Temporal server crashes while an agent's tool runs, and comes back a few seconds later with its state. */
describe('chaos: the Temporal server restarted mid-run', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'survive Temporal': byTurn([
        reply.toolUse({
          name: 'bash',
          input: { command: 'echo started >> log.txt; sleep 8; echo finished >> log.txt' },
        }),
        reply.text('Done despite Temporal.'),
      ]),
      'approve after Temporal': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'echo ran >> gated.txt; git push 2>/dev/null || true' } }),
        reply.text('Done after the approval.'),
      ]),
    }),
  );
  let temporal: RestartableService;
  let instance: TestInstance;
  let worker: ChildProcess | null = null;

  beforeAll(async () => {
    await model.start();
    temporal = await startPrivateTemporal();
    instance = await startTestInstance({ TEMPORAL_ADDRESS: temporal.address }, { worker: false });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await instance.stop();
    await temporal.destroy();
    await model.stop();
  });

  it('completes the agent with one sandbox, its tool run once, and nothing left behind', async () => {
    const { token } = await issueApiToken(instance.prisma, `temporal-restart-${Date.now()}`);
    worker = startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    const repository = await createRepository();
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId: 'temporal-restart',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['survive Temporal'] },
      },
    });
    expect(spawned.status).toBe(202);
    const { agentId } = spawned.body as { agentId: string };
    const sampler = sampleContainers(instance.docker, agentId);

    // The command has started inside the sandbox (its workspace is mounted on the host while it runs).
    await waitUntil(
      () => Promise.resolve(existsSync(path.join(instance.config.DATA_DIR, 'workspaces', agentId, 'log.txt'))),
      60_000,
    );
    await temporal.stop();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await temporal.start();

    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
      state: 'completed',
    });
    expect(await sampler.stop()).toBe(1);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    await withWorkspace(instance, agentId, async (workspace) => {
      expect((await readFile(path.join(workspace, 'log.txt'), 'utf8')).match(/started/g)).toHaveLength(1);
    });
  });

  it('keeps an approval waiting through the restart: still waiting, the sandbox paused, then run once', async () => {
    const { token } = await issueApiToken(instance.prisma, `temporal-approval-${Date.now()}`);
    worker ??= startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    const repository = await createRepository();
    const spawn = { taskId: 'temporal-approval', repository, workItem: 'approve after Temporal', match: 'git push' };
    const { agentId, toolCallId } = await spawnWaitingForApproval(instance, token, spawn);

    await temporal.stop();
    await temporal.start();
    const approve = () =>
      request(instance.baseUrl, 'POST', `/agents/${agentId}/approvals/${toolCallId}`, {
        headers: bearer(token),
        json: { decision: 'approve' },
      });
    // The client reconnects to the restarted server: the update is taken once it answers.
    let approved = await approve();
    for (let tries = 0; approved.status >= 500 && tries < 30; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      approved = await approve();
    }
    expect(approved.status).toBe(200);
    expect(await instance.temporal.workflow.getHandle(agentId).result()).toMatchObject({ state: 'completed' });
    expect(await sandboxPaused(instance.docker, agentId)).toBe(false);
    await withWorkspace(instance, agentId, async (workspace) => {
      expect(await readFile(path.join(workspace, 'gated.txt'), 'utf8')).toBe('ran\n');
    });
  });
});
