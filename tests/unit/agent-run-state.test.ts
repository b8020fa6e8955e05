import { AgentOptionsSchema } from '../../shared/agent-schemas';
import type { AgentRunInput } from '../../workflows/agent-run/contract';
import * as run from '../../workflows/agent-run/run-state';

const options = AgentOptionsSchema.parse({ tokenBudget: 1000, costBudgetUsd: 0.5, maxTurns: 3 });
const input = {
  agentId: 'a1',
  workspaceId: 'w',
  taskId: 't',
  agentType: 'worker',
  context: { repository: '/repo', branch: 'main', workItems: [] },
  options,
  initialState: 'queued',
} satisfies AgentRunInput;
const NOW = '2026-12-04T10:00:00.000Z';

describe('agentRun state', () => {
  it('adds each turn: tokens, cache use, cost and context clearings', () => {
    const status = run.initialStatus(input, NOW);
    expect(status).toMatchObject({
      state: 'queued',
      turn: 0,
      costUsd: null,
      usage: { inputTokens: 0, outputTokens: 0 },
    });
    const reply = {
      stopReason: 'tool_use',
      toolCalls: [],
      text: '',
      costUsd: 0.1,
      contextCleared: { clearedToolResults: 4 },
    };
    run.addTurn(status, 0, { ...reply, usage: { inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 100 } }, NOW);
    run.addTurn(status, 1, { ...reply, usage: { inputTokens: 1, outputTokens: 1, cacheCreationInputTokens: 7 } }, NOW);
    expect(status.turn).toBe(2);
    expect(status.usage).toEqual({
      inputTokens: 11,
      outputTokens: 6,
      cacheReadInputTokens: 100,
      cacheCreationInputTokens: 7,
    });
    expect(status.costUsd).toBe(0.2);
    expect(status.contextManagement).toEqual({ clearings: 2, clearedToolResults: 4, lastClearedAtTurn: 2 });
  });

  it('stops at the turn limit, the token budget (cache counted) and the cost budget', () => {
    expect(run.turnLimitReached(options, 2)).toBeNull();
    expect(run.turnLimitReached(options, 3)).toBe('stopped after reaching the maximum of 3 turns');
    const status = run.initialStatus(input, NOW);
    status.usage = { inputTokens: 500, outputTokens: 400, cacheReadInputTokens: 100 };
    expect(run.budgetExceeded(status, options)).toBeNull();
    status.usage.cacheReadInputTokens = 101;
    expect(run.budgetExceeded(status, options)).toBe('stopped after spending 1001 tokens, over the budget of 1000');
    status.usage.cacheReadInputTokens = 0;
    status.costUsd = 0.51;
    expect(run.budgetExceeded(status, options)).toBe(
      'stopped after spending an estimated $0.5100, over the cost budget of $0.5',
    );
  });

  it('ends as the first stop asked: a kill before the deadline, the deadline before a kill', () => {
    const killed: run.Stop = { reason: null, detail: '' };
    run.requestKill(killed, 'wrong repo', NOW);
    run.deadlineReached(killed);
    run.requestKill(killed, 'again', '2026-12-04T11:00:00.000Z');
    expect(killed).toEqual({ reason: 'killed', detail: 'again', killedAt: NOW });
    expect(run.stoppedEnding(killed, 60)).toEqual({ state: 'killed', detail: 'again' });
    const timedOut: run.Stop = { reason: null, detail: '' };
    run.deadlineReached(timedOut);
    run.requestKill(timedOut, 'late', NOW);
    expect(run.stoppedEnding(timedOut, 60)).toEqual({
      state: 'timed_out',
      error: 'timed out after 60 s',
      detail: 'per-task timeout',
    });
  });

  it('records a kill that came while the run was ending as killed', () => {
    const stop: run.Stop = { reason: 'killed', detail: 'stop it' };
    expect(run.finalEnding(stop, { state: 'completed', detail: 'result abc' })).toEqual({
      state: 'killed',
      detail: 'stop it (while ending as completed: result abc)',
    });
    expect(run.finalEnding({ reason: null, detail: '' }, { state: 'completed', detail: 'ok' })).toEqual({
      state: 'completed',
      detail: 'ok',
    });
  });

  it('carries the sandbox and every count to the next run, and tells a hub no start time before running', () => {
    const status = run.initialStatus(input, NOW);
    status.turn = 7;
    const resume = run.resumeAt({ hostQueue: 'sandbox-host-h', containerName: 'c', baseSha: 'b' }, 123, status, 'text');
    expect(resume).toMatchObject({
      hostQueue: 'sandbox-host-h',
      containerName: 'c',
      baseSha: 'b',
      turn: 7,
      deadlineAt: 123,
      summary: 'text',
    });
    expect(run.initialStatus({ ...input, resume }, NOW)).toMatchObject({ state: 'running', turn: 7 });
    expect(run.lifecycleSnapshot(status)).toMatchObject({ state: 'queued', startedAt: null, progress: { turn: 7 } });
  });
});
