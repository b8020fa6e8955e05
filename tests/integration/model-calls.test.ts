import { issueApiToken } from '../../api/auth';
import { costOf, DEFAULT_MODEL_PRICES, priceOf } from '../../config/model-prices';
import {
  byTurn,
  byWorkItem,
  call,
  FakeAnthropic,
  reply,
  reportedUsage,
  type Script,
} from '../../scripts/scripted-model-server';
import type { AgentEventView, AgentProgressMessage, ModelProgress } from '../../shared/agent-events';
import { agentStatusQuery, type AgentStatus } from '../../workflows/agent-run/contract';
import { createRepository } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { errorCode, request } from '../helpers/http';
import { sample } from '../helpers/metrics';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { readSse } from '../helpers/sse';
import { waitUntil } from '../helpers/wait';

const SONNET = priceOf(DEFAULT_MODEL_PRICES, 'claude-sonnet-5-5')!;
/**
 * Small context windows, so that a few dozen turns outgrow them: the worker's price table and the API agree on one, and
 * the worker thinks the other is larger than it is.
 */
const MODEL_PRICES = JSON.stringify({
  'claude-small': { ...SONNET, contextWindow: 20_000 },
  'claude-misjudged': { ...SONNET, contextWindow: 60_000 },
});
const API_WINDOWS = { 'claude-small': 20_000, 'claude-misjudged': 20_000 };
const BIG_RESULT = "head -c 4000 /dev/zero | tr '\\0' y";

const slowly = (text: string, eventDelayMs: number, ...calls: Array<{ name: string; input: unknown }>) => ({
  ...reply.say(text, ...calls),
  eventDelayMs,
});
const scripts: Record<string, Script> = {
  'stream slowly': byTurn([
    slowly('Let me look at the repository first. '.repeat(12), 150, call.bash('echo looked')),
    reply.text('Looked.'),
  ]),
  'stream forever': byTurn([slowly('x'.repeat(20_000), 200, call.bash('echo never'))]),
  'fail mid-stream': byTurn([
    [
      {
        ...reply.say('This reply is cut off in the middle', call.bash('echo once >> once.txt')),
        streamError: { afterEvents: 4, type: 'overloaded_error' },
      },
      reply.say('This reply arrives whole', call.bash('echo once >> once.txt')),
    ],
    reply.text('Done after a retry.'),
  ]),
  'spend money': () => reply.toolUse(call.bash('true')),
  'overflow at once': byTurn([
    reply.toolUse(call.bash("head -c 60000 /dev/zero | tr '\\0' y")),
    reply.text('Never read.'),
  ]),
  'fill the context': (recorded) =>
    recorded.turn < 30 ? reply.toolUse(call.bash(BIG_RESULT)) : reply.text('Printed a lot.'),
};

/**
 * Model calls as they really go: streamed (progress in the status and the event stream, a kill that
 * stops the stream, an error in the middle of one), cached, priced with a cost budget, and kept
 * within the context window over many turns; the Messages API is the local one.
 */
describe('streamed, cached and priced model calls', () => {
  const model = new FakeAnthropic(byWorkItem(scripts), { contextWindows: API_WINDOWS });
  let instance: TestInstance;
  let token: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url, MODEL_PRICES });
    ({ token } = await issueApiToken(instance.prisma, `ws-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Model calls\n' });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const spawnRequest = (taskId: string, workItem: string, options: Record<string, unknown> = {}) =>
    request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] }, options },
      headers: auth(),
    });
  async function spawn(taskId: string, workItem: string, options: Record<string, unknown> = {}): Promise<string> {
    const response = await spawnRequest(taskId, workItem, options);
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  }
  const status = async (agentId: string) =>
    (await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: auth() })).body as {
      state: string;
      usage: Required<AgentStatus['usage']>;
      costUsd: number | null;
      modelProgress: ModelProgress | null;
      contextManagement: { clearings: number; clearedToolResults: number; lastClearedAtTurn: number } | null;
      result: { costUsd: number | null } | null;
      error: string | null;
    };
  const eventsOf = async (agentId: string): Promise<AgentEventView[]> => {
    const response = await fetch(`${instance.baseUrl}/agents/${agentId}/events?follow=false`, { headers: auth() });
    return (await response.text())
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as AgentEventView);
  };
  const finalOf = async (agentId: string): Promise<AgentStatus> => {
    const handle = instance.temporal.workflow.getHandle(agentId);
    await handle.result().catch(() => undefined);
    return await handle.query(agentStatusQuery);
  };

  it('shows what the model writes while its reply streams, in the status and live on the event stream', async () => {
    const agentId = await spawn('task-progress', 'stream slowly');
    // Followed from the start: progress comes live (no id, not in the log), before the turn it previews.
    const following = readSse(`${instance.baseUrl}/agents/${agentId}/events`, auth());
    let seen: ModelProgress | null = null;
    await waitUntil(
      async () => {
        seen = (await status(agentId)).modelProgress;
        return seen !== null && seen.textLength > 0;
      },
      60_000,
      100,
    );
    expect(seen).toMatchObject({
      turn: 1,
      text: expect.stringMatching(/^Let me look at the repository first\./) as unknown,
    });
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
    await recordHistoryIfRequested(agentId, 'agent-run-streamed');

    const { events: live, ended } = await following;
    expect(ended).toBe(true);
    const progress = live.filter((event) => event.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((event) => event.id === null)).toBe(true);
    const previews = progress.map((event) => (JSON.parse(event.data) as AgentProgressMessage).data);
    expect(previews.every((entry) => entry.turn === 1)).toBe(true);
    expect(previews.map((entry) => entry.textLength)).toEqual(
      [...previews.map((entry) => entry.textLength)].sort((a, b) => a - b),
    );
    const turnAt = live.findIndex((event) => event.event === 'turn');
    expect(live.findIndex((event) => event.event === 'progress')).toBeLessThan(turnAt);
    // The numbered log stays gapless without them; once the turn is done there is nothing in progress.
    const numbered = live.filter((event) => event.id !== null).map((event) => Number(event.id));
    expect(numbered).toEqual(numbered.map((_, index) => index + 1));
    expect((await eventsOf(agentId)).some((event) => (event.type as string) === 'progress')).toBe(false);
    expect((await status(agentId)).modelProgress).toBeNull();
  });

  it('stops a streaming reply at once when the agent is killed', async () => {
    const agentId = await spawn('task-kill-stream', 'stream forever');
    await waitUntil(async () => (await status(agentId)).modelProgress !== null, 60_000, 100);
    const [streaming] = model.requestsOf('stream forever');
    expect(streaming?.stream?.aborted).toBe(false);
    const killed = await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: auth() });
    expect(killed.status).toBe(202);
    expect((await finalOf(agentId)).state).toBe('killed');
    // The kill's sandbox removal aborted the call on its host (not Temporal's cancellation at a later heartbeat).
    await waitUntil(() => Promise.resolve(streaming?.stream?.aborted === true), 30_000);
    expect(streaming?.stream?.sent).toBeLessThan(streaming?.stream?.events ?? 0);
    const metrics = await (await fetch(instance.workerMetricsUrl)).text();
    expect(sample(metrics, 'orchestrator_model_request_seconds_count', { outcome: 'killed' })).toBe(1);
    expect(model.requestsOf('stream forever')).toHaveLength(1);
  });

  it('retries a reply that breaks off in the middle of its stream, keeping one turn and one tool call', async () => {
    const agentId = await spawn('task-mid-stream', 'fail mid-stream');
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
    const requests = model.requestsOf('fail mid-stream');
    expect(requests.map((recorded) => recorded.turn)).toEqual([0, 0, 1]);
    expect(requests[0]?.stream).toMatchObject({ sent: 4, aborted: false });
    const replies = await instance.prisma.agentMessage.findMany({
      where: { agentId, role: 'assistant' },
      orderBy: { seq: 'asc' },
    });
    expect(JSON.stringify(replies[0]?.content)).toContain('This reply arrives whole');
    expect(JSON.stringify(replies)).not.toContain('cut off');
    expect(await instance.prisma.toolCall.count({ where: { agentId } })).toBe(1);
    const turns = (await eventsOf(agentId)).filter((event) => event.data.type === 'turn');
    expect(turns.map((event) => (event.data as { turn: number }).turn)).toEqual([1, 2]);
  });

  it('reports the estimated cost of a run everywhere and stops it at its cost budget', async () => {
    const agentId = await spawn('task-cost', 'spend money', { costBudgetUsd: 0.01 });
    await expect(instance.temporal.workflow.getHandle(agentId).result()).rejects.toThrow();
    const view = await status(agentId);
    expect(view.state).toBe('failed');
    expect(view.error).toMatch(/^stopped after spending an estimated \$0\.01\d+, over the cost budget of \$0\.01$/);
    // The cost is the price table applied to every token the API reported, the prompt cache's included.
    const usage = reportedUsage(model.requestsOf('spend money'));
    expect(view.usage).toEqual(usage);
    expect(usage.cacheReadInputTokens).toBeGreaterThan(usage.inputTokens);
    expect(view.costUsd).toBeCloseTo(costOf(usage, SONNET), 6);
    expect(view.result?.costUsd).toBeCloseTo(view.costUsd ?? 0, 6);
    const events = await eventsOf(agentId);
    const turns = events
      .filter((event) => event.data.type === 'turn')
      .map((event) => event.data as { costUsd: number; totalCostUsd: number; cacheReadInputTokens: number });
    expect(turns.at(-1)?.totalCostUsd).toBeCloseTo(view.costUsd ?? 0, 6);
    expect(turns.reduce((sum, turn) => sum + turn.costUsd, 0)).toBeCloseTo(view.costUsd ?? 0, 6);
    expect((events.find((event) => event.data.type === 'result')?.data as { costUsd: number }).costUsd).toBeCloseTo(
      view.costUsd ?? 0,
      6,
    );
    const metrics = await (await fetch(instance.workerMetricsUrl)).text();
    expect(sample(metrics, 'orchestrator_model_cost_usd_total', { model: 'claude-sonnet-5-5' })).toBeGreaterThanOrEqual(
      view.costUsd ?? 0,
    );
    expect(sample(metrics, 'orchestrator_model_tokens_total', { kind: 'cache_read' })).toBeGreaterThanOrEqual(
      usage.cacheReadInputTokens,
    );
  });

  it('refuses a cost budget it cannot enforce, starting nothing', async () => {
    const before = await instance.prisma.agent.count();
    const unpriced = await spawnRequest('task-unpriced', 'spend money', {
      model: 'someone-elses-model',
      costBudgetUsd: 1,
    });
    expect(unpriced.status).toBe(400);
    expect(errorCode(unpriced)).toBe('unpriced_model');
    expect(JSON.stringify(unpriced.body)).toContain('no price is configured for model someone-elses-model');
    const negative = await spawnRequest('task-negative', 'spend money', { costBudgetUsd: -1 });
    expect(negative.status).toBe(400);
    expect(await instance.prisma.agent.count()).toBe(before);
    // Without a budget, an unpriced model runs; its cost is unknown (null), not zero.
    model.setScript(byWorkItem({ ...scripts, 'spend money': byTurn([reply.text('Done.')]) }));
    const agentId = await spawn('task-unpriced-ok', 'spend money', { model: 'someone-elses-model' });
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
    expect((await status(agentId)).costUsd).toBeNull();
    model.setScript(byWorkItem(scripts));
  });

  it('clears older tool results before a request outgrows the context window, so a long run finishes', async () => {
    // One agent whose window the worker knows; one whose window it overestimates: the API's refusal corrects it.
    const known = await spawn('task-context', 'fill the context', { model: 'claude-small', maxTurns: 40 });
    const misjudged = await spawn('task-context-misjudged', 'fill the context', {
      model: 'claude-misjudged',
      maxTurns: 40,
    });
    for (const [agentId, modelName] of [
      [known, 'claude-small'],
      [misjudged, 'claude-misjudged'],
    ] as const) {
      expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
      const view = await status(agentId);
      expect(view.contextManagement?.clearings).toBeGreaterThanOrEqual(modelName === 'claude-small' ? 2 : 1);
      expect(view.contextManagement?.clearedToolResults).toBeGreaterThan(5);
      const clearings = (await eventsOf(agentId)).filter((event) => event.data.type === 'context');
      expect(clearings).toHaveLength(view.contextManagement?.clearings ?? -1);

      const requests = model.requests.filter((recorded) => recorded.body.model === modelName);
      const answered = requests.filter((recorded) => recorded.usage !== undefined);
      expect(answered).toHaveLength(31);
      // What the model read instead of an old result, and the latest results in full.
      const last = JSON.stringify(answered.at(-1)?.body.messages);
      expect(last).toContain('This tool result was cleared to keep the conversation within the context window: bash');
      expect(JSON.stringify(answered.at(-1)?.body.messages.at(-1))).toContain('y'.repeat(4000));
      if (modelName === 'claude-small')
        expect(requests).toHaveLength(31); // never refused
      else expect(requests.length).toBeGreaterThan(31); // refused as too long, then fitted and sent again

      // The stored transcript and the tool calls' claims are intact.
      const calls = await instance.prisma.toolCall.findMany({ where: { agentId } });
      expect(calls).toHaveLength(30);
      expect(
        calls.every((recorded) => recorded.status === 'finished' && recorded.output?.includes('y'.repeat(4000))),
      ).toBe(true);
      const results = await instance.prisma.agentMessage.findMany({ where: { agentId, role: 'user', seq: { gt: 0 } } });
      expect(results).toHaveLength(30);
      expect(results.every((message) => JSON.stringify(message.content).includes('y'.repeat(4000)))).toBe(true);
    }
  });

  it('fails clearly, without a request the API would refuse, when even the latest result cannot fit', async () => {
    const agentId = await spawn('task-overflow', 'overflow at once', { model: 'claude-small' });
    await expect(instance.temporal.workflow.getHandle(agentId).result()).rejects.toThrow();
    const view = await status(agentId);
    expect(view.state).toBe('failed');
    expect(view.error).toMatch(
      /^the conversation needs about \d+ tokens even with its older tool calls and results cleared, /,
    );
    expect(view.error).toMatch(/, more than the 11808 the context window leaves$/);
    // One request (the first turn); the second was never sent.
    expect(model.requestsOf('overflow at once').map((recorded) => recorded.turn)).toEqual([0]);
  });
});
