import { WorkflowFailedError } from '@temporalio/client';
import { issueApiToken } from '../../api/auth';
import { randomUUID } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { RepositoryCache } from '../../sandbox-runtime/repository-cache';
import { SpawnAgentRequestSchema } from '../../shared/agent-schemas';
import {
  AGENT_RUN_WORKFLOW,
  agentStatusQuery,
  type AgentRunInput,
  type AgentStatus,
} from '../../workflows/agent-run/contract';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { byTurn, EDITOR, FakeAnthropic, reply, reportedUsage } from '../../scripts/scripted-model-server';
import { costOf, DEFAULT_MODEL_PRICES, priceOf } from '../../config/model-prices';
import { recordHistoryIfRequested } from '../helpers/histories';
import { AGENT_STATE, TASK_ID } from '../../shared/search-attributes';
import { containersOf } from '../helpers/chaos';
import { createRepository, git } from '../helpers/git-repo';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';

/**
 * agentRun through the real Temporal server, PostgreSQL and Docker, with the model replaced by a
 * local server that speaks the Messages API.
 */
describe('agents on one instance', () => {
  const model = new FakeAnthropic(byTurn([]));
  let instance: TestInstance;
  let token: string;
  let workspaceId: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    ({ token, workspaceId } = await issueApiToken(instance.prisma, `ws-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Demo\n', 'app.py': 'print("hi")\n' });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const spawnBody = (taskId: string, options: Record<string, unknown> = {}) => ({
    taskId,
    agentType: 'worker',
    context: { repository, branch: 'main', workItems: ['Add hello.txt'] },
    options: { maxRetries: 2, ...options },
  });

  async function spawn(taskId: string, options: Record<string, unknown> = {}): Promise<string> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: spawnBody(taskId, options),
      headers: auth(),
    });
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  }

  it('runs a worker agent that edits a file and commits it on the result branch', async () => {
    model.setScript(
      byTurn([
        reply.toolUse({
          name: EDITOR,
          input: { command: 'create', path: 'hello.txt', file_text: 'hello from the agent\n' },
        }),
        reply.toolUse({ name: 'bash', input: { command: 'cat hello.txt; id -u' } }),
        reply.text('Added hello.txt.'),
      ]),
    );
    const before = model.requests.length;
    const agentId = await spawn('task-edit');
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final).toMatchObject({ state: 'completed', turn: 3, lastTool: 'bash' });
    // Every token the API reported is counted, and each turn after the first read its prefix from the prompt cache.
    const calls = model.requests.slice(before);
    expect(final.usage).toEqual(reportedUsage(calls));
    const cacheReads = calls.map((call) => call.usage?.cache_read_input_tokens ?? 0);
    expect(cacheReads[0]).toBe(0);
    // The second request reads everything the first wrote (tools, system prompt, first message).
    expect(cacheReads[1]).toBe(calls[0]?.usage?.cache_creation_input_tokens);
    expect(cacheReads[2]).toBeGreaterThan(cacheReads[1] ?? 0);
    expect(final.costUsd).toBeCloseTo(costOf(final.usage, priceOf(DEFAULT_MODEL_PRICES, 'claude-sonnet-5-5')!), 6);
    await recordHistoryIfRequested(agentId, 'agent-run-completed');
    // The Web UI can filter on the state and task: the search attributes follow the run.
    const { typedSearchAttributes } = await instance.temporal.workflow.getHandle(agentId).describe();
    expect(typedSearchAttributes.get(AGENT_STATE)).toBe('completed');
    expect(typedSearchAttributes.get(TASK_ID)).toBe('task-edit');

    const status = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() });
    expect(status.status).toBe(200);
    const view = status.body as { state: string; result: { branch: string; commitSha: string; diff: string } };
    expect(view.state).toBe('completed');
    expect(view.result.branch).toBe(`agent/${agentId}`);
    expect(view.result.diff).toContain('+hello from the agent');

    await withWorkspace(instance, agentId, async (workspace) => {
      expect(await git(workspace, 'rev-parse', `agent/${agentId}`)).toBe(view.result.commitSha);
      expect(await git(workspace, 'show', `agent/${agentId}:hello.txt`)).toBe('hello from the agent');
      // Copied from the host's mirror of the repository, whose origin it still names; the agent's branch stays here.
      expect(await git(workspace, 'remote', 'get-url', 'origin')).toBe(await realpath(repository));
    });
    const mirror = new RepositoryCache(path.join(instance.config.DATA_DIR, 'repository-cache')).mirrorOf(
      await realpath(repository),
    );
    expect(await git(mirror, 'rev-parse', 'refs/heads/main')).toBe(await git(repository, 'rev-parse', 'main'));
    await expect(git(mirror, 'rev-parse', '--verify', '--quiet', `refs/heads/agent/${agentId}`)).rejects.toThrow();
    expect(await containersOf(instance.docker, agentId)).toBe(0);

    // The model saw the tool results, ran as the sandbox user, and the key stayed on the worker.
    expect(calls).toHaveLength(3);
    expect(calls.every((call) => call.body.stream === true)).toBe(true);
    const { authorization, 'x-api-key': apiKey } = calls[0]!.headers;
    expect(apiKey ?? authorization).toMatch(/^(Bearer )?test-key$/);
    expect(calls[0]!.body.tools?.map((tool) => [tool.type, tool.name])).toEqual([
      ['bash_20250124', 'bash'],
      ['text_editor_20250728', EDITOR],
    ]);
    expect(JSON.stringify(calls[2]!.body.messages.at(-1))).toContain('hello from the agent\\n10001');

    const transitions = await instance.prisma.agentTransition.findMany({ where: { agentId }, orderBy: { id: 'asc' } });
    expect(transitions.map((t) => t.toState)).toEqual(['running', 'completed']);
  });

  it('kills an agent while a tool runs: container gone, state killed', async () => {
    model.setScript(byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]));
    const agentId = await spawn('task-kill');
    const handle = instance.temporal.workflow.getHandle(agentId);
    await waitUntil(async () => (await handle.query(agentStatusQuery)).lastTool === 'run_shell');
    const killed = await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: auth() });
    expect(killed.status).toBe(202);
    expect(((await handle.result()) as AgentStatus).state).toBe('killed');
    // The kill removed the sandbox at once, while the tool still ran, before the teardown.
    const scheduled = ((await handle.fetchHistory()).events ?? [])
      .map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    expect(scheduled.slice(-3)).toEqual(['removeSandboxContainer', 'teardownSandbox', 'recordAgentState']);
    await recordHistoryIfRequested(agentId, 'agent-run-killed');
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    const again = await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: auth() });
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe('already_finished');
  });

  it('times out through the workflow timer: timed_out, container gone', async () => {
    model.setScript(byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]));
    const agentId = await spawn('task-timeout', { timeout: 3 });
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('timed_out');
    await recordHistoryIfRequested(agentId, 'agent-run-timed-out');
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row.state).toBe('timed_out');
  });

  it('retries a 429 through Temporal, visibly, then succeeds', async () => {
    model.setScript(byTurn([[reply.error(429, 'rate_limit_error'), reply.text('Nothing to do.')]]));
    const agentId = await spawn('task-429');
    const handle = instance.temporal.workflow.getHandle(agentId);
    expect(((await handle.result()) as AgentStatus).state).toBe('completed');
    await recordHistoryIfRequested(agentId, 'agent-run-retried-429');
    const history = await handle.fetchHistory();
    const failedAttempts = (history.events ?? []).filter(
      (event) => event.activityTaskStartedEventAttributes?.attempt === 2,
    );
    expect(failedAttempts.length).toBe(1);
  });

  it('fails at once on a 401 with a clear error', async () => {
    model.setScript(byTurn([reply.error(401, 'authentication_error', 'invalid x-api-key')]));
    const before = model.requests.length;
    const agentId = await spawn('task-401');
    await expect(instance.temporal.workflow.getHandle(agentId).result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(model.requests.length - before).toBe(1); // never retried
    await recordHistoryIfRequested(agentId, 'agent-run-failed-401');
    const status = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() });
    expect(status.body).toMatchObject({ state: 'failed' });
    expect((status.body as { error: string }).error).toMatch(/model request rejected with 401/);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
  });

  it('reports an out-of-memory kill inside the sandbox instead of hiding it', async () => {
    model.setScript(
      byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'python3 -c "x = bytearray(512 * 1024 * 1024)"' } }),
        reply.text('It ran out of memory.'),
      ]),
    );
    const agentId = await spawn('task-oom', { resources: { memoryMb: 64 } });
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');
    expect(final.error).toMatch(/ran out of memory/);
    const call = await instance.prisma.toolCall.findFirstOrThrow({ where: { agentId, name: 'bash' } });
    expect(call).toMatchObject({ exitCode: 137, isError: true });
    expect(call.output).toMatch(/the sandbox ran out of memory/);
    const status = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() });
    expect((status.body as { error: string }).error).toMatch(/ran out of memory/);
  });

  it('gives a reviewer read-only tools: a write is refused and nothing is committed', async () => {
    model.setScript(
      byTurn([
        reply.toolUse({ name: EDITOR, input: { command: 'create', path: 'evil.txt', file_text: 'x' } }),
        reply.toolUse({ name: EDITOR, input: { command: 'view', path: 'app.py' } }),
        reply.text('Looks fine.'),
      ]),
    );
    const before = model.requests.length;
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: { ...spawnBody('task-review'), agentType: 'reviewer' },
      headers: auth(),
    });
    const { agentId } = response.body as { agentId: string };
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');
    const calls = model.requests.slice(before);
    expect(calls[0]!.body.tools?.map((tool) => tool.name)).toEqual([EDITOR, 'search_files']);
    expect(JSON.stringify(calls[1]!.body.messages.at(-1))).toContain(
      "the reviewer's editor is read-only: create is refused",
    );
    expect(JSON.stringify(calls[2]!.body.messages.at(-1))).toContain('print(\\"hi\\")');
    const result = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId } });
    expect(result).toMatchObject({ commitSha: null, diff: '' });
  });

  it("lets a tester run the project's tests and records their exit code and output", async () => {
    const testedRepository = await createRepository({ 'test.sh': 'echo "3 passing, 1 failing"\nexit 1\n' });
    model.setScript(
      byTurn([reply.toolUse({ name: 'run_tests', input: { command: 'sh test.sh' } }), reply.text('One test fails.')]),
    );
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: {
        taskId: 'task-test',
        agentType: 'tester',
        context: { repository: testedRepository, branch: 'main', workItems: ['Run the tests'] },
      },
      headers: auth(),
    });
    const { agentId } = response.body as { agentId: string };
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
    const status = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() });
    const { result } = status.body as { result: { testExitCode: number; testOutput: string } };
    expect(result.testExitCode).toBe(1);
    expect(result.testOutput).toContain('3 passing, 1 failing');
  });

  it('stops a runaway agent at maxTurns and at its token budget with a clear final state', async () => {
    model.setScript(() => reply.toolUse({ name: EDITOR, input: { command: 'view', path: '.' } }));
    const turnsAgent = await spawn('task-turns', { maxTurns: 2 });
    await expect(instance.temporal.workflow.getHandle(turnsAgent).result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const budgetAgent = await spawn('task-budget', { tokenBudget: 2500 });
    await expect(instance.temporal.workflow.getHandle(budgetAgent).result()).rejects.toBeInstanceOf(
      WorkflowFailedError,
    );
    model.setScript(byTurn([]));

    const turns = await instance.prisma.agent.findUniqueOrThrow({ where: { id: turnsAgent } });
    expect(turns).toMatchObject({ state: 'failed', turn: 2, error: 'stopped after reaching the maximum of 2 turns' });
    const budget = await instance.prisma.agent.findUniqueOrThrow({ where: { id: budgetAgent } });
    // The budget counts every token billed, cache writes and reads included.
    expect(budget.state).toBe('failed');
    const spent = Number(
      /^stopped after spending (\d+) tokens, over the budget of 2500$/.exec(budget.error ?? '')?.[1],
    );
    expect(spent).toBe(
      budget.inputTokens + budget.outputTokens + budget.cacheCreationInputTokens + budget.cacheReadInputTokens,
    );
    expect(budget.cacheReadInputTokens).toBeGreaterThan(0);
    expect(await containersOf(instance.docker, turnsAgent)).toBe(0);
    expect(await containersOf(instance.docker, budgetAgent)).toBe(0);
  });

  it('continues as new every few turns, carrying the run over without a second sandbox', async () => {
    model.setScript((recorded) =>
      recorded.turn < 5
        ? reply.toolUse({ name: 'bash', input: { command: `echo turn ${recorded.turn} >> turns.txt` } })
        : reply.text('Five turns done.'),
    );
    const agentId = `agent-${randomUUID()}`;
    const input: AgentRunInput = {
      agentId,
      workspaceId,
      taskId: 'task-long',
      agentType: 'worker',
      context: { repository, branch: 'main', workItems: ['Take six turns'] },
      options: SpawnAgentRequestSchema.parse(spawnBody('x')).options,
      initialState: 'spawning',
      turnsPerRun: 2,
    };
    await instance.prisma.agent.create({
      data: {
        id: agentId,
        workspaceId,
        taskId: input.taskId,
        agentType: 'worker',
        state: 'spawning',
        context: input.context,
        options: input.options,
      },
    });
    const first = await instance.temporal.workflow.start(AGENT_RUN_WORKFLOW, {
      taskQueue: instance.taskQueue,
      workflowId: agentId,
      args: [input],
    });
    const final = (await first.result()) as AgentStatus;
    expect(final).toMatchObject({ state: 'completed', turn: 6 });
    // The usage and cost carried over from run to run add up to what the API reported for all six turns.
    expect(final.usage).toEqual(reportedUsage(model.requestsOf('Take six turns')));
    expect(final.costUsd).toBeCloseTo(costOf(final.usage, priceOf(DEFAULT_MODEL_PRICES, 'claude-sonnet-5-5')!), 6);
    await recordHistoryIfRequested(agentId, 'agent-run-continued-as-new');

    // Three runs of two turns each and a last one; each history stays small.
    const firstHistory = await instance.temporal.workflow.getHandle(agentId, first.firstExecutionRunId).fetchHistory();
    expect(firstHistory.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    expect(firstHistory.events?.length).toBeLessThan(60);
    expect((await instance.temporal.workflow.getHandle(agentId).describe()).runId).not.toBe(first.firstExecutionRunId);

    const view = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() });
    expect((view.body as { result: { diff: string } }).result.diff).toContain('+turn 4');
    const transitions = await instance.prisma.agentTransition.findMany({ where: { agentId }, orderBy: { id: 'asc' } });
    expect(transitions.map((t) => t.toState)).toEqual(['running', 'completed']);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
  });

  it('runs each agent’s own tool call even when the model reuses a tool_use id across agents', async () => {
    // Ids are unique within one conversation only; the same id in another agent is another call.
    const sameId = reply.toolUse({ name: 'bash', input: { command: 'echo ran > ran.txt' } });
    model.setScript(byTurn([sameId, reply.text('Ran it.')]));
    const first = await spawn('task-same-id-1');
    expect(((await instance.temporal.workflow.getHandle(first).result()) as AgentStatus).state).toBe('completed');
    const second = await spawn('task-same-id-2');
    expect(((await instance.temporal.workflow.getHandle(second).result()) as AgentStatus).state).toBe('completed');
    for (const agentId of [first, second]) {
      const calls = await instance.prisma.toolCall.findMany({ where: { agentId } });
      expect(calls.map((call) => [call.name, call.status, call.exitCode])).toEqual([['bash', 'finished', 0]]);
      expect(
        await withWorkspace(instance, agentId, (workspace) => git(workspace, 'show', `agent/${agentId}:ran.txt`)),
      ).toBe('ran');
    }
  });

  it('reports a sandbox that exits unexpectedly instead of hiding it', async () => {
    model.setScript(byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]));
    const agentId = await spawn('task-crashed-sandbox');
    await waitUntil(
      async () => (await instance.prisma.toolCall.findFirst({ where: { agentId, status: 'started' } })) !== null,
    );
    await instance.docker.getContainer(containerNameFor(agentId)).kill();
    await expect(instance.temporal.workflow.getHandle(agentId).result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row.state).toBe('failed');
    expect(row.error).toMatch(/the sandbox stopped unexpectedly: it exited with code 137/);
    expect(await containersOf(instance.docker, agentId)).toBe(0);
  });
});
