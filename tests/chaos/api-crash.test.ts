import type { ChildProcess } from 'node:child_process';
import { WorkflowNotFoundError } from '@temporalio/client';
import { issueApiToken } from '../../api/auth';
import { containersOf } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { freePort } from '../helpers/ports';
import { startApiProcess, startWorkerProcess } from '../helpers/processes';
import { TcpProxy } from '../helpers/tcp-proxy';
import { waitUntil } from '../helpers/wait';

/**
 * The API process dies after recording an agent and before its workflow starts (its link to Temporal
 * hangs, then it is SIGKILLed). The worker's reconciler fails the row within a minute, with the
 * reason, and the task can be spawned again.
 */
describe('chaos: the API killed between the agent row and its workflow', () => {
  let instance: TestInstance;
  let worker: ChildProcess | null = null;
  let api: ChildProcess | null = null;
  const temporalLink = new TcpProxy(Number(new URL(`http://${process.env.TEST_TEMPORAL_ADDRESS ?? ''}`).port));

  beforeAll(async () => {
    await temporalLink.start();
    instance = await startTestInstance({}, { worker: false });
  });
  afterAll(async () => {
    api?.kill('SIGKILL');
    worker?.kill('SIGKILL');
    await temporalLink.stop();
    await instance.stop();
  });

  it('fails the orphaned row within a minute, starts nothing for it, and frees its task', async () => {
    const { token } = await issueApiToken(instance.prisma, `api-crash-${Date.now()}`);
    const repository = await createRepository();
    const body = {
      taskId: 'api-crash',
      agentType: 'worker',
      context: { repository, branch: 'main', workItems: ['never runs'] },
    };
    worker = startWorkerProcess(instance.config);
    const apiPort = await freePort();
    api = startApiProcess(instance.config, {
      API_PORT: String(apiPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalLink.port}`,
    });
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitUntil(
      async () => (await request(apiUrl, 'GET', '/health').catch(() => null))?.status === 200,
      30_000,
      200,
    );

    temporalLink.cutLink();
    // Never answered.
    const spawning = request(apiUrl, 'POST', '/agents/spawn', { headers: bearer(token), json: body }).catch(() => null);
    await waitUntil(async () => (await instance.prisma.agent.count({ where: { taskId: 'api-crash' } })) === 1, 30_000);
    api.kill('SIGKILL');
    await spawning;
    const row = await instance.prisma.agent.findFirstOrThrow({ where: { taskId: 'api-crash' } });
    expect(row.state).not.toMatch(/failed|killed|completed|timed_out/);
    await expect(instance.temporal.workflow.getHandle(row.id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    // The reconciler runs every 30 s and leaves rows younger than 30 s to their API.
    await waitUntil(
      async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: row.id } })).state === 'failed',
      90_000,
      1_000,
    );
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/never started/) as string,
    });
    await expect(instance.temporal.workflow.getHandle(row.id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await containersOf(instance.docker, row.id)).toBe(0);

    const again = await request(instance.baseUrl, 'POST', '/agents/spawn', { headers: bearer(token), json: body });
    expect(again.status).toBe(202);
    expect((again.body as { agentId: string }).agentId).not.toBe(row.id);
  });
});
