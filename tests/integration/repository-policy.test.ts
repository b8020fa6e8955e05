import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueAdminToken, issueApiToken } from '../../api/auth';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import type { FederatedAgentStatus } from '../../workflows/federated-spawn/contract';
import { bearer, spawnThroughHub, spawnedAgentId } from '../helpers/federation';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRepository, git } from '../helpers/git-repo';
import { startWorkerProcess } from '../helpers/processes';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

const run = promisify(execFile);

/**
 * Where a repository may come from is the operator's policy. Here the instance allows local paths
 * under one folder only (and https anywhere the outbound policy allows); every refused source gets a
 * clear 400 and nothing starts, and nothing tells whether a refused path exists.
 */
describe('the repository policy', () => {
  const model = new FakeAnthropic(
    byTurn([reply.toolUse({ name: 'bash', input: { command: 'cat MARKER' } }), reply.text('Read the marker.')]),
  );
  let instance: TestInstance;
  let token: string;
  let workspaceId: string;
  let root: string;
  let inside: string;
  let outside: string;

  beforeAll(async () => {
    await model.start();
    root = realpathSync(await mkdtemp(path.join(os.tmpdir(), 'allowed-root-')));
    inside = await createRepository({ MARKER: 'inside\n' });
    // createRepository makes a temp folder; move the allowed one under the root by cloning it there.
    const insideClone = path.join(root, 'project');
    await git(root, 'clone', '-q', inside, insideClone);
    inside = insideClone;
    outside = await createRepository({ MARKER: 'outside\n' });
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      REPOSITORY_LOCAL_ROOTS: root,
    });
    ({ token, workspaceId } = await issueApiToken(instance.prisma, `repo-${Date.now()}`));
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const spawn = (taskId: string, repository: string, branch = 'main'): Promise<JsonResponse> =>
    request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch, workItems: ['Read MARKER'] } },
    });
  const nothingStarted = async () => ({
    agents: await instance.prisma.agent.count({ where: { workspaceId } }),
    workflows: (await instance.temporal.workflow.count(`TaskQueue = "${instance.taskQueue}"`)).count,
  });

  it('clones a repository under an allowed root (the valid twin)', async () => {
    const response = await spawn('inside', inside);
    expect(response.status).toBe(202);
    const { agentId } = response.body as { agentId: string };
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
    expect(JSON.stringify(model.requests.at(-1)?.body.messages.at(-1))).toContain('inside');
  });

  it('refuses every other source with a clear 400 before anything starts', async () => {
    const escape = path.join(root, 'escape');
    await symlink(outside, escape);
    const marker = path.join(os.tmpdir(), `ext-pwned-${Date.now()}`);
    const cases: Array<[string, string]> = [
      ['a path outside the roots', outside],
      ['a system folder', '/etc'],
      ['a path that does not exist, outside the roots', '/nonexistent/repository'],
      ['a way out through ..', `${root}/../${path.basename(outside)}`],
      ['a symlink out of the root', escape],
      ['a relative path', 'project'],
      ['a file:// URL', `file://${inside}`],
      ['the ext transport', `ext::sh -c touch% ${marker}`],
      ['an scp-like address', 'git@example.com:org/repo.git'],
      ['a URL with credentials', 'https://user:secret@example.com/org/repo.git'],
      ['a private address', 'https://10.0.0.1/org/repo.git'],
      ['a scheme the instance does not allow', 'http://example.com/org/repo.git'],
    ];
    const messages = new Map<string, string>();
    for (const [name, repository] of cases) {
      const before = await nothingStarted();
      const response = await spawn(`refused-${messages.size}`, repository);
      expect([name, response.status, errorCode(response)]).toEqual([name, 400, 'repository_not_allowed']);
      expect(await nothingStarted()).toEqual(before);
      messages.set(name, (response.body as { error: { message: string } }).error.message);
    }
    expect(existsSync(marker)).toBe(false);
    // Whether a refused path exists is not told: an existing and a missing path outside the roots read alike.
    expect(messages.get('a path outside the roots')).toBe(
      messages.get('a path that does not exist, outside the roots'),
    );
    expect(messages.get('a system folder')).toBe(messages.get('a path that does not exist, outside the roots'));
  });

  it(
    'fails a clone that cannot be done with the same words, whether the ' + 'path is missing or the branch is',
    async () => {
      const missingPath = await spawn('missing-path', path.join(root, 'no-such-project'));
      const missingBranch = await spawn('missing-branch', inside, 'no-such-branch');
      const errors: string[] = [];
      for (const response of [missingPath, missingBranch]) {
        expect(response.status).toBe(202);
        const { agentId } = response.body as { agentId: string };
        await instance.temporal.workflow
          .getHandle(agentId)
          .result()
          .catch(() => undefined);
        const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
        expect(row.state).toBe('failed');
        errors.push((row.error ?? '').replace(/^cannot clone \S+ \(branch \S+\)/, 'cannot clone X'));
      }
      expect(errors).toEqual([
        'cannot clone X: the repository or the branch is not available',
        'cannot clone X: the repository or the branch is not available',
      ]);
    },
  );

  it('clones with none of the worker’s git configuration or environment', async () => {
    // A real worker process whose environment and global git configuration rewrite the repository's URL
    // to a decoy: if the clone honoured either, the agent would read the decoy's marker.
    const decoy = await createRepository({ MARKER: 'decoy\n' });
    const home = await mkdtemp(path.join(os.tmpdir(), 'worker-home-'));
    await writeFile(path.join(home, '.gitconfig'), `[url "${decoy}"]\n\tinsteadOf = ${inside}\n`);
    const workerEnv = {
      HOME: home,
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: `url.${decoy}.insteadOf`,
      GIT_CONFIG_VALUE_0: inside,
    };
    const { stdout } = await run('git', ['config', '--get-regexp', 'url\\..*'], {
      cwd: os.tmpdir(),
      env: { ...process.env, ...workerEnv },
    });
    expect(stdout).toContain(decoy); // git itself does honour them
    const other = await startTestInstance(
      { ANTHROPIC_API_KEY: 'k', ANTHROPIC_BASE_URL: model.url, REPOSITORY_LOCAL_ROOTS: root },
      { worker: false },
    );
    const worker = startWorkerProcess(other.config, workerEnv);
    try {
      const { token: otherToken } = await issueApiToken(other.prisma, `env-${Date.now()}`);
      const before = model.requests.length;
      const response = await request(other.baseUrl, 'POST', '/agents/spawn', {
        headers: bearer(otherToken),
        json: {
          taskId: 'no-worker-config',
          agentType: 'worker',
          context: { repository: inside, branch: 'main', workItems: ['Read MARKER'] },
        },
      });
      const { agentId } = response.body as { agentId: string };
      expect(((await other.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
      const seen = JSON.stringify(model.requests.slice(before).at(-1)?.body.messages.at(-1));
      expect(seen).toContain('inside');
      expect(seen).not.toContain('decoy');
    } finally {
      worker.kill('SIGKILL');
      await other.stop();
    }
  });

  it('gives a hub’s spawns no local paths unless its connection allows them', async () => {
    const hub = await startTestInstance();
    const spoke = await startTestInstance({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      REPOSITORY_LOCAL_ROOTS: root,
    });
    try {
      // Linked with the default: no local repositories for this hub.
      const hubSide = await issueApiToken(hub.prisma, `hub-${Date.now()}`);
      const spokeWorkspace = `spoke-${Date.now()}`;
      const spokeSide = await issueApiToken(spoke.prisma, spokeWorkspace);
      const spokeAdmin = (await issueAdminToken(spoke.prisma)).token;
      const requested = await request(hub.baseUrl, 'POST', '/api/v1/federation/connections', {
        headers: bearer(hubSide.token),
        json: { peerUrl: spoke.baseUrl },
      });
      const hubConnectionId = (requested.body as { id: string }).id;
      const pending = await spoke.prisma.federationConnection.findUniqueOrThrow({
        where: { peerInstanceId: hub.identity.current().instanceId },
      });
      const accepted = await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${pending.id}/accept`, {
        headers: bearer(spokeAdmin),
        json: { workspace: spokeWorkspace },
      });
      expect(accepted.body).toMatchObject({ status: 'ACTIVE', allowLocalRepositories: false });
      const link = {
        hubToken: hubSide.token,
        spokeToken: spokeSide.token,
        hubAdminToken: '',
        spokeAdminToken: spokeAdmin,
        hubWorkspaceId: hubSide.workspaceId,
        spokeWorkspaceId: spokeSide.workspaceId,
        hubConnectionId,
        spokeConnectionId: pending.id,
      };

      const refused = spawnedAgentId(
        await spawnThroughHub(hub, link, { taskId: 'fed-local', repository: inside, workItem: 'Read MARKER' }),
      );
      await expect(hub.temporal.workflow.getHandle(refused).result()).rejects.toThrow();
      const view = await request(hub.baseUrl, 'GET', `/api/v1/federation/agents/${refused}/status`, {
        headers: bearer(link.hubToken),
      });
      expect(view.body).toMatchObject({ data: { status: 'failed' } });
      expect((view.body as { data: { error: string } }).data.error).toMatch(
        /repository_not_allowed.*local paths are not allowed/,
      );
      expect(await spoke.prisma.agent.count({ where: { workspaceId: link.spokeWorkspaceId } })).toBe(0);

      // Valid twin: once the spoke's operator allows local repositories for this connection, the same spawn runs.
      await spoke.prisma.federationConnection.update({
        where: { id: pending.id },
        data: { allowLocalRepositories: true },
      });
      const allowed = spawnedAgentId(
        await spawnThroughHub(hub, link, { taskId: 'fed-local-allowed', repository: inside, workItem: 'Read MARKER' }),
      );
      expect(((await hub.temporal.workflow.getHandle(allowed).result()) as FederatedAgentStatus).state).toBe(
        'completed',
      );
    } finally {
      await hub.stop();
      await spoke.stop();
    }
  });

  it('keeps a root that is a symlink working through its real path', async () => {
    const linkedRoot = path.join(await mkdtemp(path.join(os.tmpdir(), 'linked-')), 'root');
    await symlink(root, linkedRoot);
    const other = await startTestInstance({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      REPOSITORY_LOCAL_ROOTS: linkedRoot,
    });
    try {
      const { token: otherToken } = await issueApiToken(other.prisma, `linked-${Date.now()}`);
      const response = await request(other.baseUrl, 'POST', '/agents/spawn', {
        headers: bearer(otherToken),
        json: {
          taskId: 'linked',
          agentType: 'worker',
          context: { repository: inside, branch: 'main', workItems: ['x'] },
        },
      });
      expect(response.status).toBe(202);
    } finally {
      await other.stop();
    }
  });
});
