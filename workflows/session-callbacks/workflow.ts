import {
  condition,
  continueAsNew,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { sessionEventsAppendedSignal, type SessionCallbacksInput, type SessionCallbacksResult } from './contract';

// One batch is a few POSTs of at most 15 s each, so the activity holds a worker slot for seconds only.
// A receiver that is down is retried with backoff (no slot is held between attempts) for up to a week.
const delivery = proxyActivities<Pick<Activities, 'deliverSessionEvents'>>({
  startToCloseTimeout: '2 minutes',
  scheduleToCloseTimeout: '7 days',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: ['CallbackRefused'],
  },
});

/** Wake-ups come from the workers' PostgreSQL listener; this slow timer only covers one that was lost. */
const FALLBACK_CHECK = '5 minutes';
/** Continue as new well before the history gets long: each wake-up adds about ten events. */
const MAX_HISTORY_EVENTS = 2_000;

/**
 * Delivers a session's lifecycle events to its callback URL, at least once and in order. Waiting is
 * workflow code: it sleeps until a signal says the agent's log grew (or a slow timer fires), then a
 * short activity POSTs the new events and records how far the receiver acknowledged; a failed POST is
 * retried with backoff and resumes from there. Ends after the agent's final state was delivered.
 */
export async function sessionCallbacks(input: SessionCallbacksInput): Promise<SessionCallbacksResult> {
  const { agentId } = input;
  let delivered = input.delivered ?? 0;
  let appended = delivered;
  setHandler(sessionEventsAppendedSignal, ({ seq }) => {
    appended = Math.max(appended, seq);
  });

  for (;;) {
    setCurrentDetails(`**${delivered}** events delivered to the callback URL`);
    let batch;
    try {
      const summary = `POST the events after ${delivered} to the callback URL`;
      batch = await delivery.deliverSessionEvents.executeWithOptions({ summary }, [{ agentId, after: delivered }]);
    } catch (error) {
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      setCurrentDetails(`gave up after **${delivered}** events: ${reason}`);
      return { delivered, undelivered: reason };
    }
    delivered = batch.delivered;
    appended = Math.max(appended, delivered);
    if (batch.ended) return { delivered };
    if (batch.more) continue;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY_EVENTS) {
      return await continueAsNew<typeof sessionCallbacks>({ agentId, delivered });
    }
    await condition(() => appended > delivered, FALLBACK_CHECK, { summary: "waiting for the agent's next event" });
  }
}

// A long-lived loop: it moves to each new worker version instead of keeping an old one alive (its
// changes after a release keep replaying its open histories, see docs/operations.md).
setWorkflowOptions({ versioningBehavior: 'AUTO_UPGRADE' }, sessionCallbacks);
