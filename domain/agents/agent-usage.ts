import type { AgentStatus } from '../../workflows/agent-run/contract';
import {
  RESULT_BUNDLE_STATUSES,
  type ContextManagement,
  type DeliveryOutcome,
  type ResultBundleStatus,
  type TokenUsage,
} from '../../shared/vocabulary';
import type { AgentResultPayload } from '../../shared/federated-agent-schemas';
import type { AgentListRow } from './agent-service';

/*
 * What a run has spent, as its views show it (the status, agent.status for a hub, the result): the
 * live workflow's numbers where it runs, else the row's, which every model turn updates.
 */

/** The run's token usage: the live status's, completed by the row (older runs' statuses have no cache fields). */
export function usageOf(row: AgentListRow, local?: AgentStatus): Required<TokenUsage> {
  return {
    inputTokens: local?.usage.inputTokens ?? row.inputTokens,
    outputTokens: local?.usage.outputTokens ?? row.outputTokens,
    cacheCreationInputTokens: local?.usage.cacheCreationInputTokens ?? row.cacheCreationInputTokens,
    cacheReadInputTokens: local?.usage.cacheReadInputTokens ?? row.cacheReadInputTokens,
  };
}

/** The run's estimated cost in USD: the live status's, else the row's; null when its model has no price. */
export const costOf = (row: AgentListRow, local?: AgentStatus): number | null =>
  local?.costUsd !== undefined ? local.costUsd : row.costUsd;

/** A finished run's result with its estimated cost, or null before it has one. */
export function resultOf(row: AgentListRow): AgentResultPayload | null {
  const result = row.result;
  if (!result) return null;
  return {
    branch: result.branch,
    commitSha: result.commitSha,
    diff: result.diff,
    testOutput: result.testOutput,
    testExitCode: result.testExitCode,
    summary: result.summary,
    costUsd: row.costUsd,
    bundle: bundleStatusOf(result.bundleStatus),
    ...(result.delivery ? { delivery: result.delivery as unknown as DeliveryOutcome } : {}),
  };
}

const bundleStatusOf = (status: string | null): ResultBundleStatus | null =>
  RESULT_BUNDLE_STATUSES.find((known) => known === status) ?? null;

/** When older tool results were cleared from the model's requests (null: never). */
export function contextOf(row: AgentListRow): ContextManagement | null {
  return row.contextClearedAtTurn === null
    ? null
    : {
        clearings: row.contextClearings,
        clearedToolResults: row.clearedToolResults,
        lastClearedAtTurn: row.contextClearedAtTurn,
      };
}
