import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

// Each failed attempt (receiver down, 5xx, timeout) is retried with backoff for as long as an agent may live.
const delivery = proxyActivities<Pick<Activities, 'deliverSessionEvents'>>({
  startToCloseTimeout: '8 days',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: ['CallbackRefused'] },
});

/**
 * Delivers a session's lifecycle events to its callback URL, at least once and in order: the
 * activity POSTs each event the agent's log gains (state changes, turns, tool calls, result) and
 * records how far the receiver acknowledged; a failed attempt resumes from there. Ends after the
 * agent's final state was delivered.
 */
export async function sessionCallbacks(input: { agentId: string }): Promise<{ delivered: number }> {
  return await delivery.deliverSessionEvents.executeWithOptions({ summary: `deliver the lifecycle events of ${input.agentId} to its callback URL` }, [input]);
}
