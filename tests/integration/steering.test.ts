import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { byTurn, byWorkItem, FakeAnthropic, reply, type RecordedRequest } from '../../scripts/scripted-model-server';
import type { AgentEventView } from '../../shared/agent-events';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { containersOf, sampleContainers } from '../helpers/chaos';
import { createRepository, git } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { run as runCli } from '../../cli/main';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';
import { workerProcess, type WorkerProcess } from '../helpers/worker-process';

const PUSH = 'echo pushed > pushed.txt; git push origin HEAD:refs/heads/somewhere 2>/dev/null || true';

/**
 * Steering a live agent (issue 24) with real Docker, Temporal and PostgreSQL and a worker process that is restarted
 * while an approval waits: a message reaches the model's next request, a gated `git push` waits in a paused sandbox
 * and runs once approved, a denial's note reaches the model, an unanswered call gets its rule's onTimeout, and a
 * pause holds the run. Every bad request is refused after its valid twin, and changes nothing.
 */
describe('steering a running agent', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'steer me': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'echo one > one.txt; sleep 4' } }),
        reply.toolUse({ name: 'bash', input: { command: PUSH } }),
        reply.toolUse({ name: 'bash', input: { command: 'rm -rf one.txt' } }),
        reply.toolUse({ name: 'bash', input: { command: 'sleep 3; echo after > after.txt' } }),
        reply.text('Done as steered.'),
      ]),
      'write hello': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'echo hello > hello.txt' } }),
        reply.text('Wrote hello.txt with one line.'),
      ]),
      'append world': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'echo world >> hello.txt' } }),
        reply.text('Appended world.'),
      ]),
      'wait for nobody': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'curl http://example.com > page.html' } }),
        reply.text('Done without the page.'),
      ]),
    }),
  );
  let instance: TestInstance;
  let worker: WorkerProcess;
  let token: string;
  let otherToken: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({}, { worker: false });
    worker = await workerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    await worker.start();
    ({ token } = await issueApiToken(instance.prisma, `steer-${Date.now()}`));
    ({ token: otherToken } = await issueApiToken(instance.prisma, `steer-other-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Demo\n' });
  });
  afterAll(async () => {
    await worker.stop('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  const headers = (bearer = token): Record<string, string> => ({ authorization: `Bearer ${bearer}` });
  const post = (pathname: string, json?: unknown, bearer = token): Promise<JsonResponse> =>
    request(instance.baseUrl, 'POST', pathname, { headers: headers(bearer), ...(json === undefined ? {} : { json }) });
  const statusOf = async (agentId: string): Promise<Record<string, unknown>> =>
    (await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: headers() })).body as Record<
      string,
      unknown
    >;
  const eventsOf = async (agentId: string): Promise<AgentEventView[]> =>
    (await instance.prisma.agentEvent.findMany({ where: { agentId }, orderBy: { seq: 'asc' } })).map(
      (row) => ({ agentId, seq: row.seq, type: row.type, at: row.at.toISOString(), data: row.data }) as AgentEventView,
    );
  const paused = async (agentId: string): Promise<boolean> =>
    (await instance.docker.getContainer(`agent-${agentId}`).inspect()).State.Paused;
  const requestText = (recorded: RecordedRequest): string => JSON.stringify(recorded.body.messages.at(-1));
  async function spawn(taskId: string, workItem: string, options: Record<string, unknown>): Promise<string> {
    const response = await post('/agents/spawn', {
      taskId,
      agentType: 'worker',
      context: { repository, branch: 'main', workItems: [workItem] },
      options,
    });
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  }
  /** The call the agent waits on once it waits on one other than `decided`. */
  async function waitingCall(agentId: string, decided?: string): Promise<{ toolCallId: string; label: string }> {
    let waiting: { toolCallId: string; label: string } | null = null;
    await waitUntil(
      async () => {
        const status = await statusOf(agentId);
        waiting = status.pendingApproval as typeof waiting;
        return status.state === 'input_required' && waiting !== null && waiting.toolCallId !== decided;
      },
      60_000,
      200,
    );
    return waiting!;
  }

  it('takes messages, approvals, a denial and a pause, through a worker restart, and refuses what cannot apply', async () => {
    const approvals = [{ tool: 'bash', match: 'git push|rm -rf' }];
    const agentId = await spawn('steer', 'steer me', { approvals });
    const sandboxes = sampleContainers(instance.docker, agentId);

    // A message while the first tool runs joins the next request, after the tool's result.
    await waitUntil(async () => (await statusOf(agentId)).lastTool === 'bash', 60_000, 100);
    for (const bad of [{}, { text: '' }, { text: 'x'.repeat(10_001) }, { text: 'hi', extra: 1 }]) {
      const refused = await post(`/agents/${agentId}/messages`, bad);
      expect([refused.status, errorCode(refused)]).toEqual([400, 'validation_failed']);
    }
    const foreign = await post(`/agents/${agentId}/messages`, { text: 'from elsewhere' }, otherToken);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'forbidden']);
    const unknown = await post('/agents/agent-00000000-0000-4000-8000-000000000000/messages', { text: 'hello?' });
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'not_found']);
    const anonymous = await request(instance.baseUrl, 'POST', `/agents/${agentId}/messages`, { json: { text: 'x' } });
    expect(anonymous.status).toBe(401);
    const said = await post(`/agents/${agentId}/messages`, { text: 'Prefer tabs over spaces.' });
    expect([said.status, said.body]).toEqual([202, { agentId, position: 1 }]);

    // The gated push waits: state input_required, the sandbox paused in the engine, an event with its label.
    const push = await waitingCall(agentId);
    expect(push.label).toContain('git push');
    const second = model.requestsOf('steer me').find((recorded) => recorded.turn === 1);
    expect(requestText(second!)).toContain('Prefer tabs over spaces.');
    expect(await paused(agentId)).toBe(true);
    const requested = (await eventsOf(agentId)).find((event) => event.data.type === 'approval');
    expect(requested?.data).toMatchObject({ phase: 'requested', toolCallId: push.toolCallId });

    // The worker restarts during the wait: the wait goes on, nothing runs, the sandbox stays paused.
    await worker.stop('SIGKILL');
    await worker.start();
    expect((await statusOf(agentId)).state).toBe('input_required');
    expect(await paused(agentId)).toBe(true);
    // The workspace is mounted on the host while the sandbox lives: the gated command has not run.
    expect(existsSync(path.join(instance.config.DATA_DIR, 'workspaces', agentId, 'pushed.txt'))).toBe(false);

    // Bad decisions first: nothing decided. Then the approval runs the call.
    const approvalsOf = `/agents/${agentId}/approvals`;
    for (const bad of [{}, { decision: 'maybe' }, { decision: 'approve', note: 'x'.repeat(2001) }]) {
      const refused = await post(`${approvalsOf}/${push.toolCallId}`, bad);
      expect([refused.status, errorCode(refused)]).toEqual([400, 'validation_failed']);
    }
    const notWaiting = await post(`${approvalsOf}/toolu_not_waiting`, { decision: 'approve' });
    expect([notWaiting.status, errorCode(notWaiting)]).toEqual([404, 'not_waiting']);
    const byOther = await post(`${approvalsOf}/${push.toolCallId}`, { decision: 'approve' }, otherToken);
    expect(byOther.status).toBe(403);
    expect((await statusOf(agentId)).state).toBe('input_required');
    const approved = await post(`${approvalsOf}/${push.toolCallId}`, { decision: 'approve' });
    expect([approved.status, approved.body]).toEqual([
      200,
      { agentId, toolCallId: push.toolCallId, decision: 'approve' },
    ]);
    const twice = await post(`${approvalsOf}/${push.toolCallId}`, { decision: 'deny' });
    expect([twice.status, errorCode(twice)]).toEqual([409, 'already_decided']);

    // The next gated call is denied with a note: the model reads it as the call's result, and nothing was removed.
    const removal = await waitingCall(agentId, push.toolCallId);
    expect(removal.label).toContain('rm -rf');
    // Denied from the command line, which finds the waiting call itself.
    const printed: string[] = [];
    const out = { write: (text: string) => printed.push(text), error: (text: string) => printed.push(text) };
    const cli = ['--url', instance.baseUrl, '--token', token];
    expect(await runCli(['deny', agentId, '--note', 'Keep one.txt, it is needed.', ...cli], out)).toBe(0);
    expect(printed).toEqual([`${agentId}  ${removal.toolCallId}  denied`]);

    // A pause during the next tool call holds the run after it: paused, the sandbox paused, no model request.
    await waitUntil(async () => (await statusOf(agentId)).turn === 4, 60_000, 100);
    const notPaused = await post(`/agents/${agentId}/resume`);
    expect([notPaused.status, errorCode(notPaused)]).toEqual([409, 'not_paused']);
    const pause = await post(`/agents/${agentId}/pause`);
    expect(pause.status).toBe(202);
    expect(pause.body).toMatchObject({ agentId, pauseRequested: true });
    await waitUntil(async () => (await statusOf(agentId)).state === 'paused', 60_000, 200);
    expect(await paused(agentId)).toBe(true);
    const requestsWhilePaused = model.requestsOf('steer me').length;
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(model.requestsOf('steer me')).toHaveLength(requestsWhilePaused);
    const resumed = await post(`/agents/${agentId}/resume`);
    expect(resumed.body).toMatchObject({ pauseRequested: false });

    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final).toMatchObject({ state: 'completed', messages: { received: 1, delivered: 1 } });
    const denied = model.requestsOf('steer me').find((recorded) => recorded.turn === 3);
    expect(requestText(denied!)).toContain('Keep one.txt, it is needed.');
    await withWorkspace(instance, agentId, async (workspace) => {
      expect(await readFile(path.join(workspace, 'pushed.txt'), 'utf8')).toBe('pushed\n');
      expect(await readFile(path.join(workspace, 'one.txt'), 'utf8')).toBe('one\n');
      expect(await readFile(path.join(workspace, 'after.txt'), 'utf8')).toBe('after\n');
    });
    const events = await eventsOf(agentId);
    const states = events.flatMap((event) => (event.data.type === 'state' ? [event.data.state] : []));
    expect(states).toEqual([
      'spawning',
      'running',
      'input_required',
      'running',
      'input_required',
      'running',
      'paused',
      'running',
      'completed',
    ]);
    expect(events.filter((event) => event.data.type === 'message').map((event) => event.data)).toEqual([
      { type: 'message', turn: 1, position: 1, text: 'Prefer tabs over spaces.' },
    ]);
    expect(
      events.flatMap((event) =>
        event.data.type === 'approval' && event.data.phase === 'decided' ? [event.data.decision] : [],
      ),
    ).toEqual(['approve', 'deny']);
    const calls = await instance.prisma.toolCall.findMany({ where: { agentId }, orderBy: { turn: 'asc' } });
    expect(calls.map((call) => [call.status, call.isError])).toEqual([
      ['finished', false],
      ['finished', false],
      ['finished', true],
      ['finished', false],
    ]);

    // Finished: every steering request is a 409, and nothing changes.
    for (const [pathname, json] of [
      [`/agents/${agentId}/messages`, { text: 'too late' }],
      [`/agents/${agentId}/pause`, undefined],
      [`${approvalsOf}/${push.toolCallId}`, { decision: 'approve' }],
    ] as const) {
      const late = await post(pathname, json);
      expect([late.status, errorCode(late)]).toEqual([409, 'already_finished']);
    }
    expect(await sandboxes.stop()).toBe(1);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    await recordHistoryIfRequested(agentId, 'agent-run-gated');
  });

  it("applies the rule's onTimeout to a call nobody decides", async () => {
    const approvals = [{ tool: 'bash', match: 'curl', timeoutSeconds: 2, onTimeout: 'deny' }];
    const agentId = await spawn('steer-timeout', 'wait for nobody', { approvals });
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final).toMatchObject({ state: 'completed' });
    const told = model.requestsOf('wait for nobody').find((recorded) => recorded.turn === 1);
    expect(requestText(told!)).toContain('no operator decided in time');
    const decided = (await eventsOf(agentId)).find(
      (event) => event.data.type === 'approval' && event.data.phase === 'decided',
    );
    expect(decided?.data).toMatchObject({ decision: 'deny', decidedBy: 'timeout', note: null });
  });

  it('continues a finished agent on its result, linked both ways, and refuses a follow-up that cannot start', async () => {
    const parent = await spawn('follow-up', 'write hello', {});
    // Not finished yet: refused, nothing starts.
    const early = await post(`/agents/${parent}/continue`, { instructions: 'append world' });
    expect([early.status, errorCode(early)]).toEqual([409, 'not_finished']);
    await instance.temporal.workflow.getHandle(parent).result();

    for (const bad of [
      {},
      { instructions: '' },
      { instructions: 'x', extra: true },
      { instructions: 'x'.repeat(10_001) },
    ]) {
      const refused = await post(`/agents/${parent}/continue`, bad);
      expect([refused.status, errorCode(refused)]).toEqual([400, 'validation_failed']);
    }
    const foreign = await post(`/agents/${parent}/continue`, { instructions: 'append world' }, otherToken);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'forbidden']);
    expect(await instance.prisma.agent.count({ where: { parentAgentId: parent } })).toBe(0);

    const continued = await post(`/agents/${parent}/continue`, { instructions: 'append world' });
    expect(continued.status).toBe(202);
    const { agentId: child, parentAgentId } = continued.body as { agentId: string; parentAgentId: string };
    expect(parentAgentId).toBe(parent);
    expect(await instance.temporal.workflow.getHandle(child).result()).toMatchObject({ state: 'completed' });

    // The follow-up's model read what its parent reported, and started on the parent's commit.
    const first = model.requestsOf('append world')[0]!;
    expect(JSON.stringify(first.body.system)).toContain('Wrote hello.txt with one line.');
    const childResult = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId: child } });
    const bundle = await fetch(`${instance.baseUrl}/agents/${child}/result.bundle`, { headers: headers() });
    expect(bundle.status).toBe(200);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'follow-up-'));
    await writeFile(path.join(dir, 'child.bundle'), Buffer.from(await bundle.arrayBuffer()));
    await git(dir, 'clone', '--quiet', repository, 'clone');
    const clone = path.join(dir, 'clone');
    await git(clone, 'fetch', '--quiet', path.join(dir, 'child.bundle'), `agent/${child}:refs/heads/result`);
    expect(await git(clone, 'rev-parse', 'result')).toBe(childResult.commitSha);
    expect(await git(clone, 'show', 'result:hello.txt')).toBe('hello\nworld');

    // Linked both ways in the status.
    expect(await statusOf(child)).toMatchObject({ parentAgentId: parent });
    expect(await statusOf(parent)).toMatchObject({ parentAgentId: null, followUps: [child] });
  });
});
