import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { issueApiToken } from '../../api/auth';
import { AgentListSchema, AgentViewSchema } from '../../api/schemas/agents';
import { SessionViewSchema } from '../../api/schemas/sessions';
import { ApiRequestError, CLIENT_ROUTES, OrchestratorClient, PEER_ONLY_ROUTES } from '../../client/api-client';
import { byWorkItem, EDITOR, FakeAnthropic, reply, byTurn } from '../../scripts/scripted-model-server';
import { createRepository, git } from '../helpers/git-repo';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

/**
 * The typed client against a running API (its routes checked against /openapi.json, its answers
 * parsed with the server's own schemas) and the CLI as a user runs it: the built dist/cli/main.js,
 * its output and its exit codes.
 */
const ROOT = path.resolve(__dirname, '../..');
const model = new FakeAnthropic(
  byWorkItem({
    'quick job': byTurn([reply.toolUse({ name: 'bash', input: { command: 'echo hi' } }), reply.text('Done quickly.')]),
    'write notes': byTurn([
      reply.toolUse({ name: EDITOR, input: { command: 'create', path: 'NOTES.md', file_text: '# Notes\n' } }),
      reply.text('Wrote NOTES.md.'),
    ]),
    'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
  }),
);

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the typed client and the CLI', () => {
  let instance: TestInstance;
  let token: string;
  let repository: string;
  let client: OrchestratorClient;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'cli-key', ANTHROPIC_BASE_URL: model.url });
    ({ token } = await issueApiToken(instance.prisma, `cli-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# CLI\n' });
    client = new OrchestratorClient({ baseUrl: instance.baseUrl, token });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const cli = async (...args: string[]): Promise<CliRun> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        [path.join(ROOT, 'dist/cli/main.js'), ...args],
        {
          env: { ...process.env, ORCHESTRATOR_URL: instance.baseUrl, ORCHESTRATOR_TOKEN: token },
          timeout: 120_000,
        },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  };

  it(
    'covers every operation of the served OpenAPI document and calls no ' + "other (but the peers' signed ones)",
    async () => {
      const document = (await (await fetch(`${instance.baseUrl}/openapi.json`)).json()) as {
        paths: Record<string, Record<string, unknown>>;
      };
      for (const [name, route] of Object.entries(CLIENT_ROUTES)) {
        expect({ name, operation: document.paths[route.path]?.[route.method] !== undefined }).toEqual({
          name,
          operation: true,
        });
      }
      const documented = Object.entries(document.paths).flatMap(([routePath, methods]) =>
        Object.keys(methods).map((method) => `${method} ${routePath}`),
      );
      const covered = new Set(Object.values(CLIENT_ROUTES).map((route) => `${route.method} ${route.path}`));
      expect(
        documented.filter(
          (operation) =>
            !covered.has(operation) && !PEER_ONLY_ROUTES.some((peerPath) => operation.endsWith(` ${peerPath}`)),
        ),
      ).toEqual([]);
    },
  );

  it('spawns, reads, lists, follows and kills through the client; answers match the server schemas', async () => {
    expect(await client.health()).toEqual({ status: 'ok', temporal: 'up', database: 'up', docker: 'up' });
    expect(await client.liveness()).toEqual({ status: 'ok' });
    expect((await client.readiness()).status).toBe('ready');
    expect((await client.jwks()).keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect(await client.instance()).toMatchObject({ instanceId: instance.identity.current().instanceId });
    expect(await client.connections()).toEqual({ connections: [] });
    expect(await client.federationEvents()).toEqual({ events: [] });
    const spawned = await client.spawnAgent({
      taskId: 'client-1',
      agentType: 'worker',
      context: { repository, branch: 'main', workItems: ['quick job'] },
    });
    const events = [];
    for await (const event of client.agentEvents(spawned.agentId)) events.push(event);
    expect(events.at(-1)).toMatchObject({ type: 'state', data: { state: 'completed' } });
    expect(AgentViewSchema.parse(await client.agentStatus(spawned.agentId))).toMatchObject({
      state: 'completed',
      turn: 2,
    });
    expect(
      AgentListSchema.parse(await client.listAgents({ state: 'completed' })).agents.map((agent) => agent.agentId),
    ).toContain(spawned.agentId);
    expect(await client.eventsSoFar(spawned.agentId)).toEqual(events);

    const session = await client.spawnSession({
      task: { id: 'client-session', title: 'A session', repository, branch: 'main', workItems: ['sleep long'] },
    });
    await waitUntil(async () => (await client.sessionStatus(session.sessionId)).agent.lastTool === 'bash', 60_000);
    expect(SessionViewSchema.parse(await client.sessionStatus(session.sessionId))).toMatchObject({
      sessionId: session.sessionId,
      state: 'running',
      callback: null,
    });
    await client.killSession(session.sessionId);
    await waitUntil(async () => (await client.sessionStatus(session.sessionId)).state === 'killed', 30_000);
    // The live status can say killed a moment before the agent's row (which a kill is checked against) does.
    await waitUntil(
      async () =>
        (await instance.prisma.agent.findUniqueOrThrow({ where: { id: session.sessionId } })).state === 'killed',
      10_000,
    );
    const refused = await client.killAgent(session.sessionId).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ApiRequestError);
    expect(refused).toMatchObject({ status: 409, code: 'already_finished' });
  });

  it('runs spawn --watch to the end of a run with a progress display, and exits 0', async () => {
    const run = await cli('spawn', '--task', 'cli-watch', '--repo', repository, '--item', 'quick job', '--watch');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const agentId = lines[0]?.split(/\s+/)[0] ?? '';
    expect(agentId).toMatch(/^agent-/);
    expect(run.stdout).toContain('turn 1: model asks for bash `echo hi`');
    expect(run.stdout).toContain('turn 1: bash → exit 0');
    expect(run.stdout).toMatch(/state completed/);
    expect(lines.at(-1)).toBe('done: the run completed');

    const status = await cli('status', agentId, '--json');
    expect(status.code).toBe(0);
    expect(AgentViewSchema.parse(JSON.parse(status.stdout))).toMatchObject({ agentId, state: 'completed' });
    const logs = await cli('logs', agentId);
    expect(logs.code).toBe(0);
    expect(logs.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(6);
    const list = await cli('list', '--state', 'completed');
    expect(list.stdout).toContain(agentId);
  });

  it('fetches a result into a clone as its branch; spawn --push asks for a push', async () => {
    const run = await cli('spawn', '--task', 'cli-fetch', '--repo', repository, '--item', 'write notes', '--watch');
    expect(run.code).toBe(0);
    const agentId = run.stdout.split(/\s+/)[0] ?? '';
    const { commitSha } = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId } });
    const clone = path.join(await mkdtemp(path.join(os.tmpdir(), 'cli-fetch-')), 'clone');
    await git(os.tmpdir(), 'clone', '--quiet', repository, clone);
    const fetched = await cli('fetch', agentId, '--dir', clone);
    expect(fetched).toEqual({ code: 0, stdout: `agent/${agentId}  ${commitSha}\n`, stderr: '' });
    expect(await git(clone, 'rev-parse', `agent/${agentId}`)).toBe(commitSha);
    expect(await git(clone, 'show', `agent/${agentId}:NOTES.md`)).toBe('# Notes');

    // Another repository lacks the base: git says so, exit 6. An unknown agent: the API's 404, exit 1.
    const elsewhere = await cli('fetch', agentId, '--dir', await createRepository({ 'other.txt': 'other\n' }));
    expect(elsewhere.code).toBe(6);
    expect(elsewhere.stderr).toContain('git could not fetch the result here');
    const unknown = await cli('fetch', 'agent-00000000-0000-4000-8000-000000000000', '--dir', clone);
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining('(404 not_found)')]);

    // --push and --push-to reach options.delivery: this instance allows only https remotes, so ssh is refused.
    const push = await cli('spawn', '--task', 'cli-push', '--repo', repository, '--item', 'write notes', '--push');
    expect(push.code).toBe(0);
    const refused = await cli(
      ...['spawn', '--task', 'cli-push-ssh', '--repo', repository, '--item', 'write notes'],
      ...['--push', '--push-to', 'ssh://example.com/repo.git'],
    );
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('options.delivery.remote')]);
    const pushed = push.stdout.split(/\s+/)[0] ?? '';
    const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: pushed } });
    expect(row.options).toMatchObject({ delivery: { push: true } });
    await instance.temporal.workflow.getHandle(pushed).result();
  });

  it(
    'watches a run that is killed meanwhile and exits 4; refusals, usage ' +
      'errors and an unreachable API get their own exit codes',
    async () => {
      const spawned = await cli('spawn', '--task', 'cli-kill', '--repo', repository, '--item', 'sleep long', '--json');
      expect(spawned.code).toBe(0);
      const { agentId } = JSON.parse(spawned.stdout) as { agentId: string };
      const watching = cli('watch', agentId);
      await waitUntil(
        async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).lastTool === 'bash',
        60_000,
      );
      expect((await cli('kill', agentId)).code).toBe(0);
      const watched = await watching;
      expect(watched.code).toBe(4);
      expect(watched.stdout.trim().split('\n').at(-1)).toBe('done: the run ended killed');

      const again = await cli('kill', agentId);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('(409 already_finished)');
      expect((await cli('status')).code).toBe(2);
      expect((await cli('spawn', '--task', 'x')).stderr).toContain('spawn needs --task');
      expect((await cli('frobnicate')).code).toBe(2);
      const help = await cli('--help');
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('Exit codes:');
      const unreachable = await cli('list', '--url', `http://127.0.0.1:${await freePort()}`);
      expect(unreachable.code).toBe(5);
      expect(unreachable.stderr).toContain('the API did not answer');
      const noToken = await cli('list', '--token', 'not-a-token');
      expect(noToken.code).toBe(1);
    },
  );
});
