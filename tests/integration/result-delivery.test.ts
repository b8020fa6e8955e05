import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { peerTransport } from '../../federation/client';
import { repositoryPolicy } from '../../platform/repository-policy';
import { pushResult } from '../../sandbox-runtime/result-delivery';
import { byTurn, byWorkItem, EDITOR, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { createRepository, git } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { GitHttpServer } from '../helpers/git-http-server';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, TEST_LOG_FILE, type TestInstance } from '../helpers/instance';
import { SshServer } from '../helpers/ssh-server';

/**
 * options.delivery (issue 23): the result branch pushed after the run, with the operator's credentials, which stay on
 * the worker: against git's own smart-HTTP server (http-backend) asking for Basic authentication.
 */
describe('result delivery', () => {
  const token = `tok_${randomBytes(16).toString('hex')}`;
  /** A script that looks for the token inside the sandbox without naming it (its input is stored and sent). */
  const search =
    `t=$(echo ${Buffer.from(token).toString('base64')} | base64 -d); ` +
    'grep -rlsF "$t" / --exclude-dir=proc --exclude-dir=sys 2>/dev/null | head -3; env | grep -cF "$t"; true';
  const model = new FakeAnthropic(
    byWorkItem({
      'write hello': byTurn([
        reply.toolUse({ name: 'bash', input: { command: search } }),
        reply.toolUse({ name: EDITOR, input: { command: 'create', path: 'hello.txt', file_text: 'hello\n' } }),
        reply.text('Wrote hello.txt.'),
      ]),
    }),
  );
  let instance: TestInstance;
  let apiToken: string;
  let server: GitHttpServer;
  let wrongServer: GitHttpServer;
  let root: string;
  let remote: string;
  let sshd: SshServer;

  beforeAll(async () => {
    await model.start();
    const local = await createRepository({ 'README.md': '# Demo\n' });
    root = await mkdtemp(path.join(os.tmpdir(), 'git-http-'));
    await git(root, 'clone', '--quiet', '--bare', local, 'origin.git');
    server = new GitHttpServer(root, { user: 'pusher', token });
    wrongServer = new GitHttpServer(root, { user: 'pusher', token: 'the-right-one' });
    await server.start();
    await wrongServer.start();
    remote = `${server.url}/origin.git`;
    // The operator's credentials file: the right token for one server, a wrong one for the other.
    const credentials = path.join(await mkdtemp(path.join(os.tmpdir(), 'git-credentials-')), 'credentials');
    await writeFile(
      credentials,
      `${server.url.replace('//', `//pusher:${token}@`)}\n${wrongServer.url.replace('//', '//pusher:wrong@')}\n`,
      { mode: 0o600 },
    );
    sshd = await SshServer.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      REPOSITORY_SCHEMES: 'https,http,ssh',
      GIT_CREDENTIALS_FILE: credentials,
      GIT_SSH_KEY_FILE: sshd.clientKeyFile,
      GIT_SSH_KNOWN_HOSTS_FILE: sshd.knownHostsFile,
    });
    ({ token: apiToken } = await issueApiToken(instance.prisma, `delivery-${Date.now()}`));
  });
  afterAll(async () => {
    await instance.stop();
    await Promise.all([server.stop(), wrongServer.stop(), model.stop(), sshd.stop()]);
  });

  const headers = (): Record<string, string> => ({ authorization: `Bearer ${apiToken}` });
  const spawnRequest = (taskId: string, delivery: Record<string, unknown>, repository = remote) =>
    request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: {
        taskId,
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['write hello'] },
        options: { delivery },
      },
      headers: headers(),
    });
  async function run(
    taskId: string,
    delivery: Record<string, unknown>,
  ): Promise<{ agentId: string; status: AgentStatus }> {
    const response = await spawnRequest(taskId, delivery);
    expect(response.status).toBe(202);
    const { agentId } = response.body as { agentId: string };
    const status = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    return { agentId, status };
  }
  const onServer = (ref: string): Promise<string | null> =>
    git(path.join(root, 'origin.git'), 'rev-parse', '--verify', '--quiet', ref).catch(() => null);

  it('pushes the result to the task’s repository with the operator’s token, which nothing else holds', async () => {
    const { agentId, status } = await run('deliver-ok', { push: true });
    await recordHistoryIfRequested(agentId, 'agent-run-delivered');
    const result = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId } });
    expect(status.state).toBe('completed');
    expect(status.delivery).toEqual({ pushed: true, remote, branch: `agent/${agentId}`, commit: result.commitSha });
    expect(await onServer(`refs/heads/agent/${agentId}`)).toBe(result.commitSha);
    expect(await git(path.join(root, 'origin.git'), 'show', `agent/${agentId}:hello.txt`)).toBe('hello');

    // The status and the event stream say so.
    const view = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: headers() });
    expect((view.body as { result: { delivery: unknown } }).result.delivery).toEqual(status.delivery);
    const events = await instance.prisma.agentEvent.findMany({ where: { agentId }, orderBy: { seq: 'asc' } });
    expect(events.map((event) => event.type)).toContain('delivery');

    // The sandbox found the token nowhere (its search printed no file and a count of 0), and neither do the logs,
    // the history, the events, the tool calls, the transcript or the API's answers.
    const [search] = await instance.prisma.toolCall.findMany({ where: { agentId }, orderBy: { startedAt: 'asc' } });
    expect(search?.output).toMatch(/^exit code 0\n0\n?$/);
    const history = JSON.stringify(await instance.temporal.workflow.getHandle(agentId).fetchHistory());
    const rows = JSON.stringify(
      [
        events,
        await instance.prisma.toolCall.findMany({ where: { agentId } }),
        await instance.prisma.agentMessage.findMany({ where: { agentId } }),
        result,
      ],
      (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    );
    const logs = await readFile(TEST_LOG_FILE, 'utf8');
    for (const place of [history, rows, logs, view.text]) expect(place).not.toContain(token);

    // Pushing the same commit again changes nothing.
    const bundle = await instance.prisma.agentResultBundle.findUniqueOrThrow({ where: { agentId } });
    const push = {
      policy: repositoryPolicy(instance.config, peerTransport(instance.config).policy),
      cache: null,
      origin: { repository: remote, branch: 'main', allowLocal: true },
      target: { remote, branch: `agent/${agentId}` },
      bundle: { data: bundle.data, ref: `refs/heads/agent/${agentId}`, commitSha: bundle.commitSha },
      credentials: {
        credentialsFile: instance.config.GIT_CREDENTIALS_FILE ?? null,
        sshKeyFile: null,
        sshKnownHostsFile: null,
      },
      signal: new AbortController().signal,
    };
    expect(await pushResult(push)).toEqual(status.delivery);
    expect(await onServer(`refs/heads/agent/${agentId}`)).toBe(result.commitSha);

    // A branch that moved on elsewhere is never overwritten: the push is refused as not a fast-forward.
    const bare = path.join(root, 'origin.git');
    const elsewhere = await git(bare, 'commit-tree', 'main^{tree}', '-p', 'main', '-m', 'someone else');
    await git(bare, 'update-ref', 'refs/heads/taken', elsewhere);
    const moved = await pushResult({ ...push, target: { remote, branch: 'taken' } });
    expect(moved).toMatchObject({ pushed: false, branch: 'taken', failure: 'non_fast_forward' });
    expect(await onServer('refs/heads/taken')).toBe(elsewhere);
  });

  it('reports a refused token as the delivery’s failure, pushes nothing, and still completes the run', async () => {
    const wrongRemote = `${wrongServer.url}/origin.git`;
    const before = wrongServer.refusedPushes;
    const { agentId, status } = await run('deliver-wrong-token', {
      push: true,
      remote: wrongRemote,
      branch: 'review/x',
    });
    expect(status.state).toBe('completed');
    expect(status.delivery).toMatchObject({
      pushed: false,
      remote: wrongRemote,
      branch: 'review/x',
      failure: 'authentication_failed',
    });
    expect(wrongServer.refusedPushes).toBeGreaterThan(before);
    expect(await onServer('refs/heads/review/x')).toBeNull();
    const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row.state).toBe('completed');
  });

  it("pushes over ssh with the operator's key, checking the server's host key", async () => {
    const sshRemote = sshd.url(path.join(root, 'origin.git'));
    const { agentId, status } = await run('deliver-ssh', { push: true, remote: sshRemote, branch: 'review/ssh' });
    const { commitSha } = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId } });
    expect(status.delivery).toEqual({ pushed: true, remote: sshRemote, branch: 'review/ssh', commit: commitSha });
    expect(await onServer('refs/heads/review/ssh')).toBe(commitSha);
  });

  it.each([
    ['a remote the policy refuses', { push: true, remote: 'git://example.com/repo.git' }, 'repository_not_allowed'],
    ['a remote with credentials', { push: true, remote: 'http://user:pw@127.0.0.1:1/r.git' }, 'repository_not_allowed'],
    ['a branch that climbs out', { push: true, branch: '../main' }, 'validation_failed'],
    ['a branch read as an option', { push: true, branch: '-f' }, 'validation_failed'],
    ['a lock file for a branch', { push: true, branch: 'main.lock' }, 'validation_failed'],
    ['an unknown delivery field', { push: true, force: true }, 'validation_failed'],
  ])('refuses %s with a JSON error, starting nothing', async (_case, delivery, code) => {
    const taskId = `deliver-bad-${Math.random().toString(36).slice(2)}`;
    const response = await spawnRequest(taskId, delivery);
    expect([response.status, errorCode(response)]).toEqual([400, code]);
    expect(await instance.prisma.agent.count({ where: { taskId } })).toBe(0);
  });
});
