import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { byTurn, byWorkItem, EDITOR, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { retentionScheduleId } from '../../workflows/retention/contract';
import { createRepository, git } from '../helpers/git-repo';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

const DAY_MS = 24 * 3600 * 1000;

/**
 * GET /agents/:agentId/result.bundle (issue 23): the result branch as a git bundle from its base, made in the sandbox,
 * checked on the host, fetched with plain git; refused with a JSON error to anyone else, before the end, without
 * changes, and once the retention removed it.
 */
describe('the result as a git bundle', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'write hello': byTurn([
        reply.toolUse({ name: EDITOR, input: { command: 'create', path: 'hello.txt', file_text: 'hello\n' } }),
        reply.text('Wrote hello.txt.'),
      ]),
      'change nothing': byTurn([reply.text('Nothing to change.')]),
      'hold the sandbox': byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]),
    }),
  );
  let instance: TestInstance;
  let token: string;
  let otherToken: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    ({ token } = await issueApiToken(instance.prisma, `bundle-${Date.now()}`));
    ({ token: otherToken } = await issueApiToken(instance.prisma, `bundle-other-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Demo\n' });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const headers = (bearer = token): Record<string, string> => ({ authorization: `Bearer ${bearer}` });
  async function spawn(taskId: string, workItem: string): Promise<string> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] } },
      headers: headers(),
    });
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  }
  const finished = async (agentId: string): Promise<void> => {
    await instance.temporal.workflow.getHandle(agentId).result();
  };
  const bundleOf = (agentId: string, bearer = token) =>
    request(instance.baseUrl, 'GET', `/agents/${agentId}/result.bundle`, { headers: headers(bearer) });

  it('serves the result branch, which plain git fetches into a clone of the repository', async () => {
    const agentId = await spawn('bundle-write', 'write hello');
    await finished(agentId);
    const result = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId } });
    expect(result).toMatchObject({ branch: `agent/${agentId}`, bundleStatus: 'stored' });

    const response = await fetch(`${instance.baseUrl}/agents/${agentId}/result.bundle`, { headers: headers() });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-git-bundle');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bundle-fetch-'));
    const file = path.join(dir, 'result.bundle');
    await writeFile(file, Buffer.from(await response.arrayBuffer()));
    const clone = path.join(dir, 'clone');
    await git(dir, 'clone', '--quiet', repository, clone);
    await git(clone, 'fetch', '--quiet', file, `agent/${agentId}:refs/heads/result`);
    expect(await git(clone, 'rev-parse', 'result')).toBe(result.commitSha);
    expect(await git(clone, 'show', 'result:hello.txt')).toBe('hello');
    expect(await git(clone, 'merge-base', '--is-ancestor', 'main', 'result').then(() => true)).toBe(true);

    // Another workspace's token, and an agent that does not exist: a JSON error, no bundle.
    const foreign = await bundleOf(agentId, otherToken);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'forbidden']);
    const unknown = await bundleOf('agent-00000000-0000-4000-8000-000000000000');
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'not_found']);
    const anonymous = await request(instance.baseUrl, 'GET', `/agents/${agentId}/result.bundle`);
    expect(anonymous.status).toBe(401);

    // The retention removes it with the workspace: 410 from then on.
    await instance.prisma.agent.update({
      where: { id: agentId },
      data: { finishedAt: new Date(Date.now() - 400 * DAY_MS) },
    });
    await waitUntil(async () => (await instance.prisma.workerHost.count()) > 0, 30_000);
    await instance.temporal.schedule.getHandle(retentionScheduleId(instance.taskQueue)).trigger();
    await waitUntil(
      async () => (await instance.prisma.agentResult.findUnique({ where: { agentId } }))?.bundleStatus === 'pruned',
      60_000,
      250,
    );
    expect(await instance.prisma.agentResultBundle.count({ where: { agentId } })).toBe(0);
    const pruned = await bundleOf(agentId);
    expect([pruned.status, errorCode(pruned)]).toEqual([410, 'pruned']);
  });

  it('refuses a bundle while the agent runs, and for a run that changed nothing', async () => {
    const running = await spawn('bundle-running', 'hold the sandbox');
    const early = await bundleOf(running);
    expect([early.status, errorCode(early)]).toEqual([409, 'not_finished']);
    await request(instance.baseUrl, 'POST', `/agents/${running}/kill`, { headers: headers() });
    await finished(running).catch(() => undefined);

    const unchanged = await spawn('bundle-unchanged', 'change nothing');
    await finished(unchanged);
    const nothing = await bundleOf(unchanged);
    expect([nothing.status, errorCode(nothing)]).toEqual([404, 'no_changes']);
    expect(await instance.prisma.agentResultBundle.count({ where: { agentId: unchanged } })).toBe(0);
  });
});
