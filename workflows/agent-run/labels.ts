import { tokensSpent } from '../../shared/vocabulary';
import { type AgentStatus } from './contract';

/**
 * The words the Temporal Web UI shows for an agent run: activity and timer summaries (fixed when the
 * step is scheduled) and the workflow's current details (kept up to date while it runs). Pure
 * functions of workflow state, so they are deterministic and never touch history on their own.
 */

export const modelCallSummary = (turn: number): string => `turn ${turn + 1}: model call`;

export function toolCallSummary(
  turn: number,
  index: number,
  count: number,
  call: { name: string; label?: string },
): string {
  return `turn ${turn + 1}: ${count > 1 ? `tool ${index + 1}/${count} ` : ''}${call.label ?? call.name}`;
}

export const launchSummary = (repository: string, branch: string, host: string | null): string =>
  `launch sandbox: clone ${repository}@${branch}${host ? ` on host ${host}` : ''}`;

export const teardownSummary = (agentId: string): string => `teardown ${agentId}`;

export const recordStateSummary = (state: string): string => `record state: ${state}`;

/**
 * The workflow's current details (markdown): state, turn, last tool, tokens, cache use, cost, and what it waits for.
 */
export function progressDetails(status: AgentStatus, maxTurns: number, note: string | null): string {
  const { usage } = status;
  const cached = usage.cacheReadInputTokens ?? 0;
  const cost = typeof status.costUsd === 'number' ? ` · ≈ $${status.costUsd.toFixed(4)}` : '';
  const lines = [
    `**${status.state}** · turn ${status.turn}/${maxTurns} · ` +
      `${tokensSpent(usage)} tokens (${usage.inputTokens} in, ` +
      `${usage.outputTokens} out` +
      (cached > 0 || usage.cacheCreationInputTokens
        ? `, cache ${cached} read / ${usage.cacheCreationInputTokens ?? 0} written`
        : '') +
      `)${cost}`,
    `**Last tool** ${status.lastTool ?? 'none yet'}`,
  ];
  const context = status.contextManagement;
  if (context)
    lines.push(
      `**Context** older tool results cleared ${context.clearings}× (last at ` +
        `turn ${context.lastClearedAtTurn}; ${context.clearedToolResults} ` +
        `cleared)`,
    );
  const waiting = status.pendingApproval;
  if (waiting)
    lines.push(
      `**Waits for approval** ${waiting.label} (tool call ${waiting.toolCallId}, rule ${waiting.rule + 1}; ` +
        (waiting.expiresAt
          ? `${waiting.onTimeout === 'approve' ? 'approved' : 'denied'} at ${waiting.expiresAt}`
          : 'no timeout') +
        ')',
    );
  if (status.pauseRequested) lines.push('**Paused** by an operator: no model or tool call until it is resumed');
  const messages = status.messages;
  if (messages && messages.received > messages.delivered)
    lines.push(`**Messages** ${messages.received - messages.delivered} from an operator wait for the next turn`);
  if (note) lines.push(`**Now** ${note}`);
  if (status.error) lines.push(`**Error** ${status.error}`);
  return lines.join('\n\n');
}
