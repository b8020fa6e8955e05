import { tokensSpent, type AgentStatus } from '../shared/agents';
import type { FederatedAgentStatus } from '../shared/federated-agents';

/**
 * The words the Temporal Web UI shows for an agent run: activity and timer summaries (fixed when the
 * step is scheduled) and the workflow's current details (kept up to date while it runs). Pure
 * functions of workflow state, so they are deterministic and never touch history on their own.
 */

export const modelCallSummary = (turn: number): string => `turn ${turn + 1}: model call`;

export function toolCallSummary(turn: number, index: number, count: number, call: { name: string; label?: string }): string {
  return `turn ${turn + 1}: ${count > 1 ? `tool ${index + 1}/${count} ` : ''}${call.label ?? call.name}`;
}

export const launchSummary = (repository: string, branch: string, host: string | null): string =>
  `launch sandbox: clone ${repository}@${branch}${host ? ` on host ${host}` : ''}`;

export const teardownSummary = (agentId: string): string => `teardown ${agentId}`;

export const recordStateSummary = (state: string): string => `record state: ${state}`;

/** The workflow's current details (markdown): state, turn, last tool, tokens, cache use, cost, and what it waits for. */
export function progressDetails(status: AgentStatus, maxTurns: number, note: string | null): string {
  const { usage } = status;
  const cached = usage.cacheReadInputTokens ?? 0;
  const cost = typeof status.costUsd === 'number' ? ` · ≈ $${status.costUsd.toFixed(4)}` : '';
  const lines = [
    `**${status.state}** · turn ${status.turn}/${maxTurns} · ${tokensSpent(usage)} tokens (${usage.inputTokens} in, ${usage.outputTokens} out${cached > 0 || usage.cacheCreationInputTokens ? `, cache ${cached} read / ${usage.cacheCreationInputTokens ?? 0} written` : ''})${cost}`,
    `**Last tool** ${status.lastTool ?? 'none yet'}`,
  ];
  const context = status.contextManagement;
  if (context) lines.push(`**Context** older tool results cleared ${context.clearings}× (last at turn ${context.lastClearedAtTurn}; ${context.clearedToolResults} cleared)`);
  if (note) lines.push(`**Now** ${note}`);
  if (status.error) lines.push(`**Error** ${status.error}`);
  return lines.join('\n\n');
}

/** The current details of a hub's federatedSpawn: the mirrored state, the remote progress, the link. */
export function followingDetails(status: FederatedAgentStatus): string {
  const progress = status.progress;
  const tokens = progress ? progress.usage.inputTokens + progress.usage.outputTokens : 0;
  const lines = [
    `**${status.state}** on peer ${status.remote.name} · ${status.following}` + (progress ? ` · turn ${progress.turn} · ${tokens} tokens` : ''),
    `**Remote agent** ${status.remoteAgentId ?? 'not yet named'} · last contact ${status.lastContactAt ?? 'never'}`,
  ];
  if (progress?.lastTool) lines.push(`**Last tool** ${progress.lastTool}`);
  if (status.kill) lines.push(`**Kill** requested ${status.kill.requestedAt}, ${status.kill.deliveredAt ? `delivered ${status.kill.deliveredAt}` : 'not delivered yet'}`);
  if (status.note) lines.push(`**Now** ${status.note}`);
  if (status.error) lines.push(`**Error** ${status.error}`);
  return lines.join('\n\n');
}
