import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../shared/agents';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, testConfig, type TestInstance } from '../helpers/instance';
import { startPrivateDocker, type RestartableService } from '../helpers/private-services';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';

/**
 * The Docker engine restarts while an agent's tool runs in its sandbox. A private engine (its own
 * socket and data), so the other test files' sandboxes are untouched.
 */
describe('chaos: the Docker engine restarted mid-run', () => {
  const model = new FakeAnthropic(
    byTurn([reply.toolUse({ name: 'run_shell', input: { command: 'echo started >> log.txt; sleep 6; echo finished >> log.txt' } }), reply.text('Done despite Docker.')]),
  );
  let engine: RestartableService & { dockerHost: string };
  let instance: TestInstance;
  let worker: ChildProcess | null = null;

  beforeAll(async () => {
    await model.start();
    engine = await startPrivateDocker(testConfig().SANDBOX_IMAGE);
    instance = await startTestInstance({ DOCKER_HOST: engine.dockerHost }, { worker: false });
  }, 300_000);
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await instance.stop();
    await engine.destroy();
    await model.stop();
  }, 120_000);

  it('keeps the sandbox running through the restart and completes the agent, its tool run once, nothing left behind', async () => {
    const { token } = await issueApiToken(instance.prisma, `docker-restart-${Date.now()}`);
    worker = startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    const repository = await createRepository();
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', { headers: bearer(token), json: { taskId: 'docker-restart', agentType: 'worker', context: { repository, branch: 'main', workItems: ['survive Docker'] } } });
    expect(spawned.status).toBe(202);
    const { agentId } = spawned.body as { agentId: string };
    const sampler = sampleContainers(instance.docker, agentId);

    // The command has started inside the sandbox (its workspace is mounted on the host while it runs).
    await waitUntil(() => Promise.resolve(existsSync(path.join(instance.config.DATA_DIR, 'workspaces', agentId, 'log.txt'))), 60_000);
    await engine.stop();
    await expect(instance.docker.ping()).rejects.toThrow(); // really down
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await engine.start();

    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({ state: 'completed' });
    expect(await sampler.stop()).toBe(1);
    const calls = await instance.prisma.toolCall.findMany({ where: { agentId } });
    expect(calls.map((call) => call.status)).toEqual(['unknown']);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    await withWorkspace(instance, agentId, async (workspace) => {
      // Run once: its outcome was lost with the engine's stream, so the model was told it is unknown and went on.
      expect((await readFile(path.join(workspace, 'log.txt'), 'utf8')).match(/started/g)).toHaveLength(1);
    });
  });
});
