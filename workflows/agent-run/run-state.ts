import type { LaunchedSandbox } from './contract';
import type { ModelTurn } from '../../activities/model';
import type { AgentOptions } from '../../shared/agent-schemas';
import { roundUsd, tokensSpent, type AgentState } from '../../shared/vocabulary';
import type { LifecycleSnapshot } from '../hub-event-delivery/contract';
import type { AgentResume, AgentRunInput, AgentStatus } from './contract';

/**
 * An agent run's state and decisions as pure functions: the live status, budgets, why the run stops
 * and how it ends. No Temporal import, so they are tested without a worker.
 */

export const DEFAULT_TURNS_PER_RUN = 50;

/** Why the run stops before the model is done: a kill or the deadline (set by the handlers). */
export interface Stop {
  reason: 'killed' | 'timed_out' | null;
  detail: string;
  /** When the first kill arrived: the host measures how long the container took to go. */
  killedAt?: string;
}

/** How a run ends: its final state, why, and the error the status shows. */
export interface Ending {
  state: AgentState;
  detail: string;
  error?: string;
}

export function initialStatus(input: AgentRunInput, now: string): AgentStatus {
  const { resume } = input;
  return {
    agentId: input.agentId,
    taskId: input.taskId,
    agentType: input.agentType,
    state: resume ? 'running' : input.initialState,
    turn: resume?.turn ?? 0,
    lastTool: resume?.lastTool ?? null,
    usage: resume ? { ...resume.usage } : { inputTokens: 0, outputTokens: 0 },
    costUsd: resume?.costUsd ?? null,
    contextManagement: resume?.contextManagement ?? null,
    startedAt: resume?.startedAt ?? now,
    updatedAt: now,
    error: resume?.error ?? null,
  };
}

/** The first kill decides; later ones change only the detail the operator reads. */
export function requestKill(stop: Stop, reason: string | undefined, now: string): void {
  stop.reason ??= 'killed';
  stop.detail = reason ?? 'kill requested';
  stop.killedAt ??= now;
}

export const deadlineReached = (stop: Stop): void => {
  stop.reason ??= 'timed_out';
};

/** How a run that a kill or the deadline stopped ends. */
export function stoppedEnding(stop: Stop, timeoutSeconds: number): Ending {
  if (stop.reason === 'killed') return { state: 'killed', detail: stop.detail };
  return { state: 'timed_out', error: `timed out after ${timeoutSeconds} s`, detail: 'per-task timeout' };
}

/**
 * A kill that arrived before the end was recorded (while collecting or tearing down) is what the operator asked for.
 */
export function finalEnding(stop: Stop, ended: Ending): Ending {
  if (stop.reason !== 'killed' || ended.state === 'killed') return ended;
  return { state: 'killed', detail: `${stop.detail} (while ending as ${ended.state}: ${ended.detail})` };
}

/** Adds a model turn's tokens, cost and context clearing to the live status. */
export function addTurn(status: AgentStatus, turn: number, reply: ModelTurn, now: string): void {
  const usage = status.usage;
  status.turn = turn + 1;
  status.updatedAt = now;
  usage.inputTokens += reply.usage.inputTokens;
  usage.outputTokens += reply.usage.outputTokens;
  const { cacheCreationInputTokens: written, cacheReadInputTokens: read } = reply.usage;
  if (written !== undefined) usage.cacheCreationInputTokens = (usage.cacheCreationInputTokens ?? 0) + written;
  if (read !== undefined) usage.cacheReadInputTokens = (usage.cacheReadInputTokens ?? 0) + read;
  if (typeof reply.costUsd === 'number') status.costUsd = roundUsd((status.costUsd ?? 0) + reply.costUsd);
  if (reply.contextCleared) {
    const clearings = (status.contextManagement?.clearings ?? 0) + 1;
    const { clearedToolResults } = reply.contextCleared;
    status.contextManagement = { clearings, clearedToolResults, lastClearedAtTurn: status.turn };
  }
}

/** Why the run may not start turn `turn`, or null. */
export const turnLimitReached = (options: AgentOptions, turn: number): string | null =>
  turn >= options.maxTurns ? `stopped after reaching the maximum of ${options.maxTurns} turns` : null;

/** Why the run stops after a model turn for its token or cost budget (before running its tools), or null. */
export function budgetExceeded(status: AgentStatus, options: AgentOptions): string | null {
  const spent = tokensSpent(status.usage);
  if (spent > options.tokenBudget)
    return `stopped after spending ${spent} tokens, over the budget of ${options.tokenBudget}`;
  const cost = status.costUsd ?? 0;
  if (options.costBudgetUsd !== undefined && cost > options.costBudgetUsd) {
    return `stopped after spending an estimated $${cost.toFixed(4)}, over the cost budget of $${options.costBudgetUsd}`;
  }
  return null;
}

/** What the next run of the chain needs: the sandbox, the turn it starts at and what the status carries. */
export function resumeAt(
  sandbox: LaunchedSandbox,
  deadlineAt: number,
  status: AgentStatus,
  summary: string,
): AgentResume {
  return {
    hostQueue: sandbox.hostQueue,
    containerName: sandbox.containerName,
    baseSha: sandbox.baseSha,
    turn: status.turn,
    usage: { ...status.usage },
    startedAt: status.startedAt,
    deadlineAt,
    lastTool: status.lastTool,
    error: status.error,
    summary,
    costUsd: status.costUsd ?? null,
    contextManagement: status.contextManagement ?? null,
  };
}

/** The state change a hub that spawned this agent is told. */
export function lifecycleSnapshot(status: AgentStatus): LifecycleSnapshot {
  const { turn, lastTool, usage, costUsd, updatedAt } = status;
  return {
    state: status.state,
    startedAt: status.state === 'queued' || status.state === 'spawning' ? null : status.startedAt,
    progress: {
      turn,
      lastTool,
      usage: { ...usage },
      costUsd: costUsd ?? null,
      updatedAt,
      ...(status.pendingApproval ? { pendingApproval: { ...status.pendingApproval } } : {}),
    },
    error: status.error,
    occurredAt: updatedAt,
  };
}
