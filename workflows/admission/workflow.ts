import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  admissionStateQuery,
  hostReportSignal,
  releaseSlotSignal,
  requestSlotUpdate,
  slotGrantedSignal,
  type AdmissionState,
} from './contract';
import { admitWaiting, answerFor, emptyAdmissionState, enqueue, holdersToCheck, release } from './queue';

const checks = proxyActivities<Pick<Activities, 'endedAgents'>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/**
 * While agents wait and no slot frees for this long, the holders are checked for workflows that ended without
 * releasing.
 */
const HOLDER_CHECK_INTERVAL = '30 seconds';
/** A holder admitted this recently may have no workflow yet: the API asks for the slot, then starts it. */
const HOLDER_START_GRACE_MS = 30_000;
/** Continue as new well before the history gets long: each report, request and release adds a few events. */
const MAX_HISTORY_EVENTS = 5_000;

/**
 * The instance's admission queue. Worker hosts report their capacity; agents ask for a slot (an update
 * that answers admitted or queued at once), the best waiting agent (priority, then arrival) gets the
 * next free slot on a host that reported lately, and is told by a signal. Nothing polls: a waiting
 * agent's workflow sleeps on a condition, and this one wakes on reports, requests and releases. A slot
 * whose holder ended without releasing it (a terminated workflow) is found while others wait.
 */
export async function hostAdmission(carried?: AdmissionState): Promise<void> {
  const state = carried ?? emptyAdmissionState();
  const announce: Array<{ agentId: string; hostId: string }> = [];
  const admit = (): void => {
    announce.push(...admitWaiting(state, Date.now()));
  };

  setHandler(admissionStateQuery, () => state);
  setHandler(hostReportSignal, ({ hostId, capacity }) => {
    state.hosts[hostId] = { capacity, lastSeenAt: Date.now() };
    admit();
  });
  setHandler(releaseSlotSignal, ({ agentId }) => {
    if (release(state, agentId)) admit();
  });
  setHandler(requestSlotUpdate, (request) => {
    enqueue(state, request);
    admit();
    const answer = answerFor(state, request.agentId);
    // An agent admitted by its own request learns its host from this answer: no signal as well.
    if (answer.state === 'admitted') {
      const told = announce.findIndex((grant) => grant.agentId === request.agentId);
      if (told >= 0) announce.splice(told, 1);
    }
    return answer;
  });
  admit();

  for (;;) {
    const long = (): boolean =>
      workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY_EVENTS;
    const wake = (): boolean => announce.length > 0 || long();
    // Idle, it sleeps until something happens; with agents waiting, it also wakes to look for slots held by ended
    // workflows.
    const woke =
      state.waiting.length > 0 ? await condition(wake, HOLDER_CHECK_INTERVAL) : (await condition(wake), true);
    while (announce.length > 0) {
      const grant = announce.shift();
      if (!grant) break;
      try {
        await getExternalWorkflowHandle(grant.agentId).signal(slotGrantedSignal, { hostId: grant.hostId });
      } catch {
        // The agent's workflow is gone: its slot goes to the next one.
        release(state, grant.agentId);
        admit();
      }
    }
    if (!woke && state.waiting.length > 0) {
      for (const agentId of await checks.endedAgents(holdersToCheck(state, Date.now(), HOLDER_START_GRACE_MS)))
        release(state, agentId);
      admit();
    }
    const quiet = (): boolean => announce.length === 0;
    if (long() && quiet()) {
      await condition(allHandlersFinished);
      if (quiet()) return await continueAsNew<typeof hostAdmission>(state);
    }
  }
}

// A long-lived loop: it moves to each new worker version instead of keeping an old one alive (its
// changes after a release keep replaying its open histories, see docs/operations.md).
setWorkflowOptions({ versioningBehavior: 'AUTO_UPGRADE' }, hostAdmission);
