import {
  condition,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  setWorkflowOptions,
  uuid4,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { isTerminalState } from '../../shared/vocabulary';
import { agentLifecycleSignal, type HubEventDeliveryInput, type LifecycleSnapshot } from './contract';
import { FEDERATION_FAILURES } from '../federation-command/contract';

const delivery = proxyActivities<Pick<Activities, 'pushAgentEvent'>>({
  startToCloseTimeout: '1 minute',
  // A hub that is down for a while still gets the event; past an hour it asks with agent.status anyway.
  scheduleToCloseTimeout: '1 hour',
  // Tried again every 10 s at most: an event held by a cut reaches the hub within seconds of the link's return.
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: [FEDERATION_FAILURES.eventRefused],
  },
});

/**
 * Runs on the spoke beside an agent a hub spawned: agentRun signals each state change and each turn's
 * progress here, and this workflow pushes them to the hub in order (progress of one state that queued
 * up is coalesced to the newest), each as a signed agent.lifecycle EVENT with its own id and
 * the next sequence number, retrying while the hub is unreachable. It outlives agentRun (abandoned
 * child), so the agent never waits for the hub; it ends after the terminal event, or at `expiresAt`.
 */
export async function hubEventDelivery(
  input: HubEventDeliveryInput,
): Promise<{ delivered: number; undelivered: number }> {
  const queue: LifecycleSnapshot[] = [];
  setHandler(agentLifecycleSignal, (snapshot) => {
    queue.push(snapshot);
  });
  let sequence = 0;
  let delivered = 0;
  let undelivered = 0;
  for (;;) {
    setCurrentDetails(`**${delivered}** events delivered to the hub, ${undelivered} undelivered`);
    if (
      !(await condition(() => queue.length > 0, Math.max(1, input.expiresAt - Date.now()), {
        summary: "waiting for the agent's next state change",
      }))
    )
      break;
    // Progress reports of one state that queued up while the hub was slow: only the newest is worth sending.
    while (queue.length > 1 && queue[0]?.state === queue[1]?.state) queue.shift();
    const snapshot = queue.shift();
    if (!snapshot) continue;
    sequence += 1;
    try {
      const summary = `deliver event ${sequence} (${snapshot.state}, turn ${snapshot.progress.turn}) to the hub`;
      await delivery.pushAgentEvent.executeWithOptions({ summary }, [
        { agentId: input.agentId, origin: input.origin, eventId: uuid4(), sequence, snapshot },
      ]);
      delivered += 1;
    } catch {
      undelivered += 1; // the hub asks with agent.status when events stop coming
    }
    if (isTerminalState(snapshot.state)) break;
  }
  return { delivered, undelivered };
}

// A long-lived loop: it moves to each new worker version instead of keeping an old one alive (its
// changes after a release keep replaying its open histories, see docs/operations.md).
setWorkflowOptions({ versioningBehavior: 'AUTO_UPGRADE' }, hubEventDelivery);
