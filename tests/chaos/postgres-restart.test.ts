import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startPrivatePostgres, type RestartableService } from '../helpers/private-services';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';
import { startWorkerProcess } from '../helpers/processes';

/**
 * PostgreSQL crashes (immediate stop) while an agent's tool runs and stays down past the tool's end,
 * so recording the tool's outcome fails; it comes back seconds later. A private cluster, so the
 * other test files never see it go.
 */
describe('chaos: PostgreSQL restarted mid-run', () => {
  const model = new FakeAnthropic(
    byTurn([
      reply.toolUse({ name: 'bash', input: { command: 'echo started >> log.txt; sleep 2' } }),
      reply.text('Done despite PostgreSQL.'),
    ]),
  );
  let postgres: RestartableService & { databaseUrl: string };
  let instance: TestInstance;
  let worker: ChildProcess | null = null;

  beforeAll(async () => {
    await model.start();
    postgres = await startPrivatePostgres();
    instance = await startTestInstance({ DATABASE_URL: postgres.databaseUrl }, { worker: false });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await instance.stop();
    await postgres.destroy();
    await model.stop();
  });

  it('completes the agent with one sandbox, its tool run once, its rows right, and nothing left behind', async () => {
    const { token } = await issueApiToken(instance.prisma, `postgres-restart-${Date.now()}`);
    worker = startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    const repository = await createRepository();
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId: 'postgres-restart',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['survive PostgreSQL'] },
        options: { maxRetries: 6 },
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
    await postgres.stop();
    await expect(instance.prisma.$queryRaw`SELECT 1`).rejects.toThrow(); // really down
    // A client meanwhile hears why, and that it may ask again: a 503 with a JSON error, never a 500 or a stack trace.
    const meanwhile = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: bearer(token) });
    expect([meanwhile.status, errorCode(meanwhile), meanwhile.headers.get('retry-after')]).toEqual([
      503,
      'database_unavailable',
      '5',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await postgres.start();

    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');
    await waitUntil(
      async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state === 'completed',
    );
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
      state: 'completed',
      turn: 2,
    });
    // The call ran once; its outcome is known, or (its write lost with the database) reported unknown, never run again.
    const calls = await instance.prisma.toolCall.findMany({ where: { agentId } });
    expect(calls).toHaveLength(1);
    expect(['finished', 'unknown']).toContain(calls[0]!.status);
    expect(await sampler.stop()).toBe(1);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    await withWorkspace(instance, agentId, async (workspace) => {
      expect((await readFile(path.join(workspace, 'log.txt'), 'utf8')).match(/started/g)).toHaveLength(1);
    });
  });
});
