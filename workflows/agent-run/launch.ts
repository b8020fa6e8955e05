import { ApplicationFailure, condition } from '@temporalio/workflow';
import type { LaunchedSandbox } from './contract';
import { sandboxHostQueue } from '../../shared/task-queues';
import { DEFAULT_PRIORITY, type AgentState } from '../../shared/vocabulary';
import type { SlotAnswer } from '../admission/contract';
import { admission, despiteWorkerLoss, onHost } from './proxies';
import { AGENT_RUN_FAILURES, type AgentRunInput } from './contract';
import { launchSummary } from './labels';

/** A queued agent asks for its slot again after this long, then twice as long each time up to the maximum. */
const ASK_AGAIN_FIRST_MS = 30_000;
const ASK_AGAIN_MAX_MS = 30 * 60_000;

export interface LaunchContext {
  input: AgentRunInput;
  deadlineAt: number;
  /** The host the admission workflow named: set by the spawn's own answer, an answer here or its signal. */
  grant: { hostId: string | null };
  enterState: (state: AgentState, detail: string) => Promise<void>;
  /** Told before the launch starts: a kill from then on tears down on that host. */
  onHostChosen: (hostQueue: string) => void;
}

/**
 * Gets a sandbox slot from the instance's admission workflow and, when every host is full, waits
 * (state queued, no polling) for the signal that names the host. Then launches the sandbox there.
 */
export async function admitAndLaunch({
  input,
  deadlineAt,
  grant,
  enterState,
  onHostChosen,
}: LaunchContext): Promise<LaunchedSandbox> {
  const { agentId, options } = input;
  const priority = input.priority ?? DEFAULT_PRIORITY;
  const ask = async (summary: string): Promise<SlotAnswer> => {
    const answer = await admission.requestSlot.executeWithOptions({ summary }, [{ agentId, priority }]);
    if (answer.state === 'admitted') grant.hostId ??= answer.hostId;
    return answer;
  };
  // The spawn's own request was admitted (its answer came with the start), or the run asks now.
  const answer: SlotAnswer =
    grant.hostId !== null
      ? { state: 'admitted', hostId: grant.hostId }
      : await ask(`ask for a sandbox slot (priority ${priority})`);
  if (answer.state === 'queued' && grant.hostId === null) {
    await enterState('queued', `waiting for a sandbox slot: ${answer.ahead} ahead`);
    // Woken by the grant's signal; asking again now and then (idempotent) covers a grant that never came.
    for (let waitMs = ASK_AGAIN_FIRST_MS; ; waitMs = Math.min(waitMs * 2, ASK_AGAIN_MAX_MS)) {
      if (await condition(() => grant.hostId !== null, waitMs, { summary: 'queued: waiting for a sandbox slot' }))
        break;
      await ask('still queued: ask for the slot again');
    }
  }
  const hostId = grant.hostId;
  if (hostId === null)
    throw ApplicationFailure.nonRetryable('admitted without a host', AGENT_RUN_FAILURES.sandboxFailed);
  if (answer.state === 'queued') await enterState('spawning', `admitted on host ${hostId}`);
  const hostQueue = sandboxHostQueue(hostId);
  onHostChosen(hostQueue);
  const { sandbox } = onHost(hostQueue, options.maxRetries);
  const summary = launchSummary(input.context.repository, input.context.branch, hostId);
  const launch = {
    agentId,
    workspaceId: input.workspaceId,
    context: input.context,
    options,
    deadline: new Date(deadlineAt).toISOString(),
  };
  return await despiteWorkerLoss(() => sandbox.launchSandbox.executeWithOptions({ summary }, [launch]));
}
