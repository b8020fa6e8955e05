import type { ChildProcess } from 'node:child_process';
import { issueApiToken } from '../../api/auth';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';

/** How long a stopping worker may take: its shutdown grace time (5 s) and a margin. */
const EXIT_WITHIN_MS = 15_000;

/**
 * SIGTERM (what systemd and `docker stop` send) stops the real worker process within its grace time,
 * also after it killed an agent in the middle of a tool call: no Docker connection is left open.
 */
describe('a worker process stopped with SIGTERM', () => {
  const model = new FakeAnthropic(byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]));
  let instance: TestInstance;
  let worker: ChildProcess | null = null;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({}, { worker: false });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  const exitsWithin = (child: ChildProcess, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve(true);
        return;
      }
      const timer = setTimeout(() => resolve(false), ms);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });

  it('exits within its grace time after killing an agent mid-tool', async () => {
    const { token } = await issueApiToken(instance.prisma, `shutdown-${Date.now()}`);
    const started = startWorkerProcess(instance.config, {
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
    });
    worker = started;
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId: 'shutdown',
        agentType: 'worker',
        context: { repository: await createRepository(), branch: 'main', workItems: ['sleep'] },
      },
    });
    expect(spawned.status).toBe(202);
    const { agentId } = spawned.body as { agentId: string };
    await waitUntil(
      async () => (await instance.prisma.toolCall.count({ where: { agentId, status: 'started' } })) === 1,
      60_000,
    );
    expect(
      (await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: bearer(token) })).status,
    ).toBe(202);
    await waitUntil(
      async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state === 'killed',
      30_000,
    );
    expect((await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state).toBe('killed');

    started.kill('SIGTERM');
    expect(await exitsWithin(started, EXIT_WITHIN_MS)).toBe(true);
    expect(started.exitCode).toBe(0);
  }, 120_000);
});
