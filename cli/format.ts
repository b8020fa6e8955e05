import type { AgentEventView } from '../shared/agent-events';

/** One line per event of a run, as `watch` and `logs` print it. */
export function describeEvent(event: AgentEventView): string {
  const time = event.at.slice(11, 19);
  const { data } = event;
  switch (data.type) {
    case 'state':
      return `${time}  #${event.seq}  state ${data.state}${data.detail ? ` (${data.detail})` : ''}${data.error ? `: ${data.error}` : ''}`;
    case 'turn':
      return `${time}  #${event.seq}  turn ${data.turn}: ${data.toolCalls.length > 0 ? `model asks for ${data.toolCalls.join(', ')}` : 'model is done'}${data.text ? ` — ${data.text.split('\n')[0]?.slice(0, 80) ?? ''}` : ''} (${data.inputTokens + data.outputTokens} tokens)`;
    case 'tool':
      return `${time}  #${event.seq}  turn ${data.turn}: ${data.tool} → ${data.status === 'unknown' ? 'outcome unknown' : data.exitCode === null ? 'error' : `exit ${data.exitCode}`}`;
    case 'result':
      return `${time}  #${event.seq}  result: ${data.commitSha ? `commit ${data.commitSha.slice(0, 12)}` : 'no changes'} on ${data.branch ?? '?'}${data.filesChanged !== null ? `, ${data.filesChanged} files changed` : ''}${data.testExitCode !== null ? `, tests exit ${data.testExitCode}` : ''}`;
  }
}

/** The closing line of `watch`. */
export const progressLine = (state: string): string => (state === 'completed' ? 'done: the run completed' : `done: the run ended ${state}`);
