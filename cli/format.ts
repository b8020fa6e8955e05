import type { AgentEventView, TurnUsage } from '../shared/agent-events';
import { tokensSpent } from '../shared/vocabulary';

/** "1234 tokens, 900 read from the cache, $0.0123": every billed token, as the token budget counts them. */
export function turnUsage(usage: TurnUsage): string {
  const cached = usage.cacheReadInputTokens ?? 0;
  const cost = usage.costUsd === undefined || usage.costUsd === null ? '' : `, ${formatUsd(usage.costUsd)}`;
  return `${tokensSpent(usage)} tokens${cached > 0 ? `, ${cached} read from the cache` : ''}${cost}`;
}

/** Dollars with four decimals below a dollar ($0.0123), two above ($12.34). */
export const formatUsd = (usd: number): string => `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`;

/** One line per event of a run, as `watch` and `logs` print it. */
export function describeEvent(event: AgentEventView): string {
  const time = event.at.slice(11, 19);
  const { data } = event;
  switch (data.type) {
    case 'state':
      return (
        `${time}  #${event.seq}  state ` +
        `${data.state}${data.detail ? ` (${data.detail})` : ''}${data.error ? `: ${data.error}` : ''}`
      );
    case 'turn':
      return (
        `${time}  #${event.seq}  turn ${data.turn}: ` +
        (data.toolCalls.length > 0 ? `model asks for ${data.toolCalls.join(', ')}` : 'model is done') +
        (data.text ? ` — ${data.text.split('\n')[0]?.slice(0, 80) ?? ''}` : '') +
        ' ' +
        `(${turnUsage(data)})`
      );
    case 'context':
      return (
        `${time}  #${event.seq}  turn ${data.turn}: context window: older tool ` +
        `results cleared (${data.clearedToolResults} cleared, about ` +
        `${data.estimatedTokens} of ${data.budgetTokens} tokens)`
      );
    case 'tool':
      return (
        `${time}  #${event.seq}  turn ${data.turn}: ${data.tool} → ` +
        (data.status === 'unknown' ? 'outcome unknown' : data.exitCode === null ? 'error' : `exit ${data.exitCode}`)
      );
    case 'result':
      return (
        `${time}  #${event.seq}  result: ` +
        `${data.commitSha ? `commit ${data.commitSha.slice(0, 12)}` : 'no changes'} ` +
        `on ` +
        (data.branch ?? '?') +
        (data.filesChanged !== null ? `, ${data.filesChanged} files changed` : '') +
        (data.testExitCode !== null ? `, tests exit ${data.testExitCode}` : '') +
        (typeof data.costUsd === 'number' ? `, cost ≈ ${formatUsd(data.costUsd)}` : '')
      );
    case 'delivery':
      return data.pushed
        ? `${time}  #${event.seq}  pushed ${data.commit.slice(0, 12)} to ${data.branch} on ${data.remote}`
        : `${time}  #${event.seq}  not pushed to ${data.branch} on ${data.remote} (${data.failure}): ${data.reason}`;
    case 'message':
      return `${time}  #${event.seq}  turn ${data.turn}: operator message ${data.position}: ${firstLine(data.text)}`;
    case 'approval':
      if (data.phase === 'requested')
        return (
          `${time}  #${event.seq}  waits for approval: ${data.tool} (tool call ${data.toolCallId}` +
          (data.expiresAt ? `, ${data.onTimeout === 'approve' ? 'approved' : 'denied'} at ${data.expiresAt})` : ')')
        );
      return (
        `${time}  #${event.seq}  ${data.decision === 'approve' ? 'approved' : 'denied'}: ${data.tool}` +
        ` (${data.decidedBy === 'timeout' ? 'on its timeout' : 'by an operator'}${data.note ? `: ${data.note}` : ''})`
      );
  }
}

const firstLine = (text: string): string => text.split('\n')[0]?.slice(0, 80) ?? '';

/** The closing line of `watch`. */
export const progressLine = (state: string): string =>
  state === 'completed' ? 'done: the run completed' : `done: the run ended ${state}`;
