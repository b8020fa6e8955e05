import { issueApiToken } from '../../api/auth';
import { byTurn, call, FakeAnthropic, reply, type RecordedRequest } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { createRepository, git } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { withWorkspace } from '../helpers/workspace';

/** What the model read back for the call of `turn`: the tool result in the next request. */
function resultOf(requests: RecordedRequest[], turn: number): { text: string; isError: boolean } {
  const last = requests.find((recorded) => recorded.turn === turn + 1)?.body.messages.at(-1)?.content;
  const block = (Array.isArray(last) ? last[0] : undefined) as { content?: string; is_error?: boolean } | undefined;
  return { text: block?.content ?? '', isError: block?.is_error === true };
}

/**
 * The Anthropic-defined tools, executed for real in the hardened sandbox: the bash tool's session
 * keeps its working directory and environment between calls and restarts clean, and the text editor
 * views, creates, replaces and inserts, answering mistakes with errors the model reads.
 */
describe('the bash tool and the text editor in the sandbox', () => {
  const model = new FakeAnthropic(
    byTurn([
      reply.toolUse(
        call.bash(
          'mkdir -p src/deep && cd src && export GREETING=hello && NAME=world && ' +
            'alias say=echo && greet() { echo "hi $1"; }',
        ),
      ),
      reply.toolUse(call.bash('pwd; echo "$GREETING $NAME"; say aliased; greet fn; exit 3')),
      reply.toolUse(call.bash('pwd; echo "still $GREETING"')),
      reply.toolUse(call.restartBash()),
      reply.toolUse(call.bash('pwd; echo "[${GREETING:-unset}]"')),
      reply.toolUse(call.create('src/notes.txt', 'alpha\nbeta\nalpha beta\n')),
      reply.toolUse(call.replace('src/notes.txt', 'beta\nalpha', 'BETA\nalpha')),
      reply.toolUse(call.replace('src/notes.txt', 'alpha', 'x')),
      reply.toolUse(call.insert('src/notes.txt', 1, 'inserted')),
      reply.toolUse(call.view('src/notes.txt')),
      reply.toolUse(call.view('/workspace/src/notes.txt', [2, 3])),
      reply.toolUse(call.view('.')),
      reply.toolUse(call.view('missing.txt')),
      reply.text('Used every tool.'),
    ]),
  );
  let instance: TestInstance;
  let token: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    ({ token } = await issueApiToken(instance.prisma, `ws-${Date.now()}`));
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  it('keeps a bash session between calls, restarts it, and edits files with the editor', async () => {
    const repository = await createRepository({ 'README.md': '# Tools\n' });
    const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: {
        taskId: 'task-tools',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['Use the tools'] },
      },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(spawned.status).toBe(202);
    const { agentId } = spawned.body as { agentId: string };
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final).toMatchObject({ state: 'completed', turn: 14 });
    const requests = model.requestsOf('Use the tools');

    // bash: the working directory, variables, aliases and functions carry over, even past a non-zero exit.
    expect(resultOf(requests, 1).text).toBe('exit code 3\n/workspace/src\nhello world\naliased\nhi fn\n');
    expect(resultOf(requests, 2).text).toBe('exit code 0\n/workspace/src\nstill hello\n');
    // A restart: back in /workspace with a fresh environment.
    expect(resultOf(requests, 3).text).toContain('The bash session was restarted');
    expect(resultOf(requests, 4).text).toBe('exit code 0\n/workspace\n[unset]\n');

    // The editor: create, a unique replacement, an ambiguous one refused, an insert, views with line numbers.
    expect(resultOf(requests, 5)).toEqual({
      text: 'File created successfully at: /workspace/src/notes.txt\n',
      isError: false,
    });
    expect(resultOf(requests, 6).isError).toBe(false);
    expect(resultOf(requests, 7).isError).toBe(true);
    expect(resultOf(requests, 7).text).toContain('old_str appears 2 times');
    expect(resultOf(requests, 8).isError).toBe(false);
    expect(resultOf(requests, 9).text).toBe(
      '     1\talpha\n     2\tinserted\n     3\tBETA\n     4\talpha beta\n     5\t\n',
    );
    expect(resultOf(requests, 10).text).toBe('     2\tinserted\n     3\tBETA\n');
    expect(resultOf(requests, 11).text).toContain('/workspace/src/deep/');
    expect(resultOf(requests, 11).text).toContain('/workspace/src/notes.txt');
    expect(resultOf(requests, 11).text).not.toContain('.git');
    expect(resultOf(requests, 12)).toEqual({ text: 'The path /workspace/missing.txt does not exist.', isError: true });

    // The result holds the edited file and nothing of the bash session (it lives in the sandbox's /tmp).
    await withWorkspace(instance, agentId, async (workspace) => {
      expect(await git(workspace, 'show', `agent/${agentId}:src/notes.txt`)).toBe('alpha\ninserted\nBETA\nalpha beta');
      expect(await git(workspace, 'show', '--name-only', '--format=', `agent/${agentId}`)).toBe('src/notes.txt');
    });
  });
});
