import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  continueAsNew,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { AGENT_STATE } from '../../shared/search-attributes';
import { AGENT_RUN_FAILURES, killAgentSignal } from '../agent-run/contract';
import { records, results } from './proxies';
import {
  connectionStatusSignal,
  federatedAgentStatusQuery,
  remoteAgentEventSignal,
  type FederatedAgentStatus,
  type FederatedSpawnInput,
} from './contract';
import { follow, mirrored } from './follow';
import { followingDetails } from './labels';
import { isWaitingForOperator, newMirror, receiveEvent, requestKill, resumeOf } from './mirror';
import type { Outcome } from './outcomes';
import { deliverSpawn, type Link } from './peer';
import { timeoutGraceMs } from './timing';

const DEFAULT_TIMEOUT_MS = 3600 * 1000;

/**
 * Runs on the hub, one per agent it runs on a peer: sign and send agent.spawn, verify the spoke's
 * signed reply, then follow the remote agent until it is terminal (see follow). Signal `kill` sends
 * agent.kill until the spoke confirms it; query `status` returns the mirror. The task's timeout is
 * enforced here too (plus a grace for the spoke's own verdict), and the run continues as new before
 * its history grows long, however long the remote agent runs.
 */
export async function federatedSpawn(input: FederatedSpawnInput): Promise<FederatedAgentStatus> {
  const { agentId, payload, resume } = input;
  const now = (): string => new Date().toISOString();
  const timeoutMs = payload.options?.timeout ?? DEFAULT_TIMEOUT_MS;
  const deadlineAt = resume?.deadlineAt ?? Date.now() + timeoutMs + timeoutGraceMs(timeoutMs);
  const mirror = newMirror(input, now());
  const { status } = mirror;

  // ---- handlers
  setHandler(federatedAgentStatusQuery, () => status);
  setHandler(killAgentSignal, ({ reason }) => requestKill(mirror, reason, now()));
  setHandler(remoteAgentEventSignal, (event) => receiveEvent(mirror, event, now()));
  setHandler(connectionStatusSignal, ({ status: connection }) => {
    mirror.connectionStatus = connection;
  });

  // ---- main
  const deadline = new CancellationScope();
  const waitsCount = payload.options?.waitsCountTowardTimeout === true;
  deadline
    .run(async () => {
      // The spoke's clock stops while its agent waits for an operator (unless the task says waits count): past the
      // deadline, a waiting agent is waited for, and the deadline moves by the time it waited.
      for (let endsAt = deadlineAt; ;) {
        await sleep(Math.max(1, endsAt - Date.now()), {
          summary: `deadline: task timeout of ${timeoutMs} ms plus grace`,
        });
        if (waitsCount) break;
        await condition(() => !isWaitingForOperator(status.state));
        endsAt = deadlineAt + (status.waitedMs ?? 0);
        if (endsAt <= Date.now()) break;
      }
      mirror.overdue = true;
    })
    .catch(() => undefined); // cancelled when the run ends first

  const link: Link = { input, mirror };
  let outcome: Outcome | null = null;
  try {
    if (!resume || resume.spawnUnanswered) outcome = await deliverSpawn(link);
    outcome ??= await follow(link, timeoutMs);
  } finally {
    deadline.cancel();
  }
  if ('continueAsNew' in outcome)
    return await continueAsNew<typeof federatedSpawn>({ ...input, resume: resumeOf(mirror, deadlineAt) });

  // A completed agent's commit is brought here (the hub serves it, and pushes it with its own credentials).
  if (outcome.state === 'completed') await bringResultHere(input, status);
  status.state = outcome.state;
  status.following = 'ended';
  status.updatedAt = now();
  if (outcome.error !== undefined) status.error = outcome.error;
  upsertSearchAttributes([{ key: AGENT_STATE, value: outcome.state }]);
  setCurrentDetails(followingDetails(status));
  const error = outcome.error !== undefined ? { error: outcome.error } : {};
  const final = { agentId, state: outcome.state, detail: outcome.detail, ...error, ...mirrored(mirror) };
  await records.recordFederatedState.executeWithOptions({ summary: `record final state: ${outcome.state}` }, [final]);
  if (outcome.state === 'failed')
    throw ApplicationFailure.nonRetryable(outcome.error ?? 'agent failed', AGENT_RUN_FAILURES.agentFailed);
  return status;
}

/** Fetches the completed agent's bundle from the spoke, then pushes it when the task asked; never fails the run. */
async function bringResultHere(input: FederatedSpawnInput, status: FederatedAgentStatus): Promise<void> {
  const agent: [{ agentId: string }] = [{ agentId: input.agentId }];
  const bestEffort = (error: unknown): null => {
    if (isCancellation(error)) throw error;
    return null;
  };
  setCurrentDetails('fetching the result from the spoke');
  status.bundle = await results.fetchRemoteResult
    .executeWithOptions({ summary: `fetch the result from ${input.remote.name}: agent.result` }, agent)
    .catch(bestEffort);
  if (input.deliver && status.bundle === 'stored') {
    setCurrentDetails('pushing the result');
    status.delivery = await results.deliverResult
      .executeWithOptions({ summary: 'deliver: push the result branch' }, agent)
      .catch(bestEffort);
  }
}
