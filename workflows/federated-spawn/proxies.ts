import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { FEDERATION_FAILURES } from '../federation-command/contract';

/** The hub's activities for following a remote agent, each with its options and the reason for them. */

// Database writes: retried for minutes, a restarting PostgreSQL is not a reason to end a run.
export const records = proxyActivities<
  Pick<Activities, 'recordRemoteAgent' | 'recordFederatedState' | 'recordCommandFailure'>
>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

// A reply that is not the peer's own signature for this message never becomes one by asking again.
export const verification = proxyActivities<Pick<Activities, 'verifyCommandReply'>>({
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FEDERATION_FAILURES.replyNotVerified],
  },
});

// One attempt per call: the workflow decides when to send (or ask) again and says why in the status.
export const oneShot = proxyActivities<Pick<Activities, 'pollRemoteAgent' | 'sendCommand'>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

// After the run: the result's bundle is fetched from the spoke (piece by piece) and, when the task asked, pushed with
// this instance's credentials. Neither ever fails the run: only a worker or database fault is worth another attempt.
export const results = proxyActivities<Pick<Activities, 'fetchRemoteResult' | 'deliverResult'>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FEDERATION_FAILURES.commandRefused, FEDERATION_FAILURES.replyNotVerified],
  },
});
