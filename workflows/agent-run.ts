import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import type { LaunchedSandbox } from '../activities/agent-sandbox';
import { agentStatusQuery, killAgentSignal, roundUsd, tokensSpent, type AgentResume, type AgentRunInput, type AgentState, type AgentStatus } from '../shared/agents';
import type { ModelTurn } from '../activities/model';
import { agentLifecycleSignal, HUB_EVENT_DELIVERY_WORKFLOW, hubEventDeliveryWorkflowId, type HubEventDeliveryInput, type LifecycleSnapshot } from '../shared/federated-agents';
import { admissionWorkflowId, DEFAULT_PRIORITY, releaseSlotSignal, slotGrantedSignal, type SlotAnswer } from '../shared/admission';
import { AGENT_STATE } from '../shared/search-attributes';
import { sandboxHostQueue } from '../shared/task-queues';
import { WORKER_SHUTDOWN_FAILURE } from '../shared/failures';
import { launchSummary, modelCallSummary, progressDetails, recordStateSummary, teardownSummary, toolCallSummary } from './run-labels';

type SandboxActivities = Pick<Activities, 'launchSandbox' | 'collectResult' | 'removeSandboxContainer'>;

/** Agents admitted by the instance's admission workflow instead of polling a host (older histories poll). */
const ADMISSION_PATCH = 'admission-queue';
/** A kill removes a running sandbox at once (older histories waited for the activity in flight to notice its cancellation). */
const KILL_AT_ONCE_PATCH = 'kill-removes-sandbox-at-once';
/** Model calls run on the sandbox's host, so that a kill's sandbox removal there also stops the call at once (older histories ran them on the instance's queue). */
const MODEL_ON_HOST_PATCH = 'model-calls-on-sandbox-host';
/** How long a sandbox activity may wait for its host's worker: past it, the host is taken for gone. */
const HOST_PICKUP_TIMEOUT = '1 minute';
const QUEUED_RETRY_INTERVAL = '3 seconds';
/** A queued agent asks for its slot again after this long, then twice as long each time up to the maximum: an answer that got lost never leaves it waiting. */
const ASK_AGAIN_FIRST_MS = 30_000;
const ASK_AGAIN_MAX_MS = 30 * 60_000;
/** How often a call is made again because the worker running it went away (a deploy, a crash) before giving up. */
const MAX_WORKER_LOSSES = 20;
const DEFAULT_TURNS_PER_RUN = 50;
/** How long a hub's events may keep being delivered after the agent's deadline. */
const HUB_EVENTS_GRACE_MS = 3600 * 1000;

// No attempt limit: a state write (the final one above all) retries until PostgreSQL takes it.
const records = proxyActivities<Pick<Activities, 'recordAgentState'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

// Asking again is cheap and idempotent; a burst of spawns sees requests aborted when the admission
// workflow's task times out under load, and a long backoff would leave them waiting long after it recovered.
const admission = proxyActivities<Pick<Activities, 'requestSlot'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds' },
});

/**
 * Sandbox activities run on the task queue of the host that owns the container. A host whose worker
 * takes nothing from its queue within HOST_PICKUP_TIMEOUT is gone: the activity fails instead of
 * waiting forever (schedule-to-start timeouts are not retried).
 */
function sandboxOn(taskQueue: string, maxRetries: number, admitted = false) {
  return proxyActivities<SandboxActivities>({
    taskQueue,
    startToCloseTimeout: '20 minutes',
    heartbeatTimeout: '15 seconds',
    // Admitted runs also wait for a cancelled activity to stop before going on, so teardown never races a launch or a tool.
    ...(admitted ? { scheduleToStartTimeout: HOST_PICKUP_TIMEOUT, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
    retry: { initialInterval: '1 second', maximumAttempts: maxRetries + 1, nonRetryableErrorTypes: ['SandboxFailed'] },
  });
}

/**
 * Tool calls are detached in the sandbox and re-attached by a retried attempt, so retrying them is
 * always safe: they are retried for as long as the run lasts (a lasting fault ends with the deadline).
 * A host that takes nothing from its queue within HOST_PICKUP_TIMEOUT is gone, as for other sandbox activities.
 */
function toolsOn(taskQueue: string, admitted: boolean) {
  return proxyActivities<Pick<Activities, 'runTool'>>({
    taskQueue,
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '15 seconds',
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    // Admitted runs wait for a cancelled call to stop before tearing down (older histories did not).
    cancellationType: admitted ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED : ActivityCancellationType.TRY_CANCEL,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: ['SandboxFailed'] },
  });
}

/**
 * Teardown is bounded in minutes, whatever happens to the host: past that, the host's reconciler
 * removes what is left when it comes back, and the run still ends.
 */
function teardownOn(taskQueue: string) {
  return proxyActivities<Pick<Activities, 'teardownSandbox'>>({
    taskQueue,
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '15 seconds',
    scheduleToStartTimeout: HOST_PICKUP_TIMEOUT,
    scheduleToCloseTimeout: '5 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
  });
}

/** Whether an activity failed because the worker running it went away (a deploy's SIGTERM, or a crash its heartbeat timeout found). */
const workerLost = (error: unknown): boolean =>
  error instanceof ActivityFailure &&
  ((error.cause instanceof ApplicationFailure && error.cause.type === WORKER_SHUTDOWN_FAILURE) ||
    (error.cause instanceof TimeoutFailure && error.cause.timeoutType === TimeoutType.HEARTBEAT));

/**
 * Makes an idempotent call again when its worker went away, without spending the task's retries on
 * it: a deploy is not the task's failure. The calls given here are idempotent (a stored model reply,
 * a launch that finds its container, a collect that ends the leftovers of the one before).
 */
async function despiteWorkerLoss<T>(call: () => Promise<T>): Promise<T> {
  for (let losses = 0; ; losses++) {
    try {
      return await call();
    } catch (error) {
      if (losses >= MAX_WORKER_LOSSES || !workerLost(error) || isCancellation(error)) throw error;
    }
  }
}

/** Whether an activity failed because no worker of its host took it in time. */
const hostUnreachable = (error: unknown): boolean =>
  error instanceof ActivityFailure && error.cause instanceof TimeoutFailure && error.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;

/** "host … unreachable" for an activity no worker of its host took in time; the failure's own words otherwise. */
function describeFailure(error: unknown, hostQueue: string | null): string {
  if (hostUnreachable(error)) return `host ${hostQueue?.replace(/^sandbox-host-/, '') ?? 'of the sandbox'} unreachable: its worker took no work within ${HOST_PICKUP_TIMEOUT}`;
  return error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
}

/** Adds a model turn's tokens, cost and context clearing to the live status (older histories' turns have no cache or cost fields). */
function addUsage(status: AgentStatus, reply: ModelTurn): void {
  const usage = status.usage;
  usage.inputTokens += reply.usage.inputTokens;
  usage.outputTokens += reply.usage.outputTokens;
  if (reply.usage.cacheCreationInputTokens !== undefined) usage.cacheCreationInputTokens = (usage.cacheCreationInputTokens ?? 0) + reply.usage.cacheCreationInputTokens;
  if (reply.usage.cacheReadInputTokens !== undefined) usage.cacheReadInputTokens = (usage.cacheReadInputTokens ?? 0) + reply.usage.cacheReadInputTokens;
  if (typeof reply.costUsd === 'number') status.costUsd = roundUsd((status.costUsd ?? 0) + reply.costUsd);
  if (reply.contextCleared) {
    const clearings = (status.contextManagement?.clearings ?? 0) + 1;
    status.contextManagement = { clearings, clearedToolResults: reply.contextCleared.clearedToolResults, lastClearedAtTurn: status.turn };
  }
}

/**
 * One agent run: launch the sandbox, loop model call -> tool calls until the model is done, collect
 * the result, tear down. `kill` and the per-task timeout cancel the run; teardown always runs.
 * Every `turnsPerRun` turns the run continues as new, carrying only a small resume record, so a
 * 500-turn agent never comes near Temporal's history limits.
 */
export async function agentRun(input: AgentRunInput): Promise<AgentStatus> {
  const { agentId, options, resume } = input;
  const turnsPerRun = input.turnsPerRun ?? DEFAULT_TURNS_PER_RUN;
  const now = new Date().toISOString();
  const status: AgentStatus = {
    agentId,
    taskId: input.taskId,
    agentType: input.agentType,
    state: resume ? 'running' : input.initialState,
    turn: resume?.turn ?? 0,
    lastTool: resume?.lastTool ?? null,
    usage: resume ? { ...resume.usage } : { inputTokens: 0, outputTokens: 0 },
    costUsd: resume ? (resume.costUsd ?? null) : null,
    contextManagement: resume?.contextManagement ?? null,
    startedAt: resume?.startedAt ?? now,
    updatedAt: now,
    error: resume?.error ?? null,
  };
  setHandler(agentStatusQuery, () => status);
  /** The Web UI's live view of the run (see run-labels). */
  const showProgress = (note: string | null): void => setCurrentDetails(progressDetails(status, options.maxTurns, note));
  showProgress(resume ? `resumed at turn ${status.turn}` : null);
  const deadlineAt = resume?.deadlineAt ?? Date.now() + options.timeout * 1000;

  const launcher = proxyActivities<Pick<Activities, 'launchSandbox' | 'teardownSandbox'>>({
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: options.maxRetries + 1, nonRetryableErrorTypes: ['SandboxFailed'] },
  });
  /**
   * Model calls stream and heartbeat with every event: the heartbeat timeout finds a dead worker, the
   * start-to-close timeout only bounds a runaway call (a long generation is not cut). On a host's
   * queue they fail like its sandbox activities when the host is gone.
   */
  const modelOn = (hostQueue: string | null) =>
    proxyActivities<Pick<Activities, 'callModel'>>({
      startToCloseTimeout: hostQueue === null ? '10 minutes' : '1 hour',
      heartbeatTimeout: '30 seconds',
      ...(hostQueue === null ? {} : { taskQueue: hostQueue, scheduleToStartTimeout: HOST_PICKUP_TIMEOUT }),
      retry: {
        initialInterval: '1 second',
        backoffCoefficient: 2,
        maximumInterval: '1 minute',
        maximumAttempts: options.maxRetries + 1,
        nonRetryableErrorTypes: ['ModelRequestRejected', 'ModelNotConfigured', 'ContextWindowExceeded'],
      },
    });

  // An agent a hub spawned tells it every state change through a delivery workflow that outlives this one.
  const hubEvents = input.origin ? getExternalWorkflowHandle(hubEventDeliveryWorkflowId(agentId)) : null;
  if (input.origin && !resume) {
    const delivery: HubEventDeliveryInput = { agentId, origin: input.origin, expiresAt: deadlineAt + HUB_EVENTS_GRACE_MS };
    await startChild(HUB_EVENT_DELIVERY_WORKFLOW, { workflowId: hubEventDeliveryWorkflowId(agentId), args: [delivery], parentClosePolicy: ParentClosePolicy.ABANDON }).catch((error: unknown) => {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    });
  }

  /** Sends the current state and progress to the hub's delivery workflow (agents a hub spawned only). */
  async function tellHub(): Promise<void> {
    if (!hubEvents) return;
    const snapshot: LifecycleSnapshot = {
      state: status.state,
      startedAt: status.state === 'queued' || status.state === 'spawning' ? null : status.startedAt,
      progress: { turn: status.turn, lastTool: status.lastTool, usage: { ...status.usage }, costUsd: status.costUsd ?? null, updatedAt: status.updatedAt },
      error: status.error,
      occurredAt: status.updatedAt,
    };
    // A delivery workflow that already ended (expired) cannot be told; the hub asks with agent.status.
    await hubEvents.signal(agentLifecycleSignal, snapshot).catch(() => undefined);
  }

  async function setState(state: AgentState, detail?: string, error?: string): Promise<void> {
    status.state = state;
    status.updatedAt = new Date().toISOString();
    if (error !== undefined) status.error = error;
    upsertSearchAttributes([{ key: AGENT_STATE, value: state }]);
    showProgress(detail ?? null);
    await records.recordAgentState.executeWithOptions({ summary: recordStateSummary(state) }, [
      { agentId, state, ...(detail !== undefined ? { detail } : {}), ...(error !== undefined ? { error } : {}) },
    ]);
    await tellHub();
  }

  // The admission workflow names the host whose slot this agent gets (see launch).
  const grant: { hostId: string | null } = { hostId: null };
  setHandler(slotGrantedSignal, ({ hostId }) => {
    grant.hostId ??= hostId;
  });
  const admitted = patched(ADMISSION_PATCH);
  const placement: { hostQueue: string | null } = { hostQueue: resume?.hostQueue ?? null };

  /**
   * Asks the instance's admission workflow for a slot and, when every host is full, waits (state
   * queued, no polling) for the signal that names the host. Then launches the sandbox on that host.
   */
  async function launch(): Promise<LaunchedSandbox> {
    if (!admitted) return await launchPolling();
    const priority = input.priority ?? DEFAULT_PRIORITY;
    const ask = async (summary: string): Promise<SlotAnswer> => {
      const answer = await admission.requestSlot.executeWithOptions({ summary }, [{ agentId, priority }]);
      if (answer.state === 'admitted') grant.hostId ??= answer.hostId;
      return answer;
    };
    // The spawn's own request was admitted (its answer came with the start), or the run asks now.
    if (input.admittedOn) grant.hostId ??= input.admittedOn;
    const answer: SlotAnswer = grant.hostId !== null ? { state: 'admitted', hostId: grant.hostId } : await ask(`ask for a sandbox slot (priority ${priority})`);
    if (answer.state === 'queued' && grant.hostId === null) {
      await setState('queued', `waiting for a sandbox slot: ${answer.ahead} ahead`);
      // Woken by the grant's signal; asking again now and then (idempotent) covers a grant that never came.
      for (let waitMs = ASK_AGAIN_FIRST_MS; ; waitMs = Math.min(waitMs * 2, ASK_AGAIN_MAX_MS)) {
        if (await condition(() => grant.hostId !== null, waitMs, { summary: 'queued: waiting for a sandbox slot' })) break;
        await ask('still queued: ask for the slot again');
      }
    }
    const hostId = grant.hostId;
    if (hostId === null) throw ApplicationFailure.nonRetryable('admitted without a host', 'SandboxFailed');
    if (answer.state === 'queued') await setState('spawning', `admitted on host ${hostId}`);
    placement.hostQueue = sandboxHostQueue(hostId);
    const onHost = sandboxOn(placement.hostQueue, options.maxRetries, true);
    const attempt = await despiteWorkerLoss(() =>
      onHost.launchSandbox.executeWithOptions({ summary: launchSummary(input.context.repository, input.context.branch, hostId) }, [
        { agentId, workspaceId: input.workspaceId, context: input.context, options, deadline: new Date(deadlineAt).toISOString(), admitted: true },
      ]),
    );
    if (!attempt.launched) throw ApplicationFailure.nonRetryable('the host refused an admitted agent', 'SandboxFailed');
    return attempt;
  }

  /** Histories from before the admission workflow: try a host every few seconds while all are full. */
  async function launchPolling(): Promise<LaunchedSandbox> {
    for (;;) {
      const attempt = await launcher.launchSandbox({ agentId, workspaceId: input.workspaceId, context: input.context, options, deadline: new Date(deadlineAt).toISOString() });
      if (attempt.launched) return attempt;
      if (status.state !== 'queued') await setState('queued', 'waiting for a free sandbox slot');
      await sleep(QUEUED_RETRY_INTERVAL, { summary: `queued: try again in ${QUEUED_RETRY_INTERVAL}` });
    }
  }

  // Set by the kill signal or the deadline; an object so the checks below see the handlers' writes.
  const stop: { reason: 'killed' | 'timed_out' | null; detail: string; killedAt?: string } = { reason: null, detail: '' };
  const runScope = new CancellationScope();
  setHandler(killAgentSignal, ({ reason }) => {
    stop.reason ??= 'killed';
    stop.detail = reason ?? 'kill requested';
    stop.killedAt ??= new Date().toISOString();
    runScope.cancel();
  });
  // The activity in flight (a tool, a model call) learns of its cancellation only at its next heartbeat,
  // seconds later: a kill of a running agent removes its container now; the teardown follows as always.
  void condition(() => stop.reason === 'killed' && status.state === 'running').then(async () => {
    const hostQueue = placement.hostQueue;
    if (!admitted || hostQueue === null || !patched(KILL_AT_ONCE_PATCH)) return;
    await sandboxOn(hostQueue, options.maxRetries, true)
      .removeSandboxContainer.executeWithOptions({ summary: 'kill: remove the sandbox now' }, [{ agentId, ...(stop.killedAt ? { killRequestedAt: stop.killedAt } : {}) }])
      .catch(() => undefined); // the teardown removes it then
  });
  const deadline = new CancellationScope();
  deadline
    .run(async () => {
      await sleep(Math.max(1, deadlineAt - Date.now()), { summary: `deadline: per-task timeout of ${options.timeout} s` });
      stop.reason ??= 'timed_out';
      runScope.cancel();
    })
    .catch(() => undefined); // cancelled when the run ends first

  type Ending = { state: AgentState; error?: string; detail: string };
  /** How a run that a kill or the deadline stopped ends. */
  const stopped = (): Ending =>
    stop.reason === 'killed' ? { state: 'killed', detail: stop.detail } : { state: 'timed_out', error: `timed out after ${options.timeout} s`, detail: 'per-task timeout' };
  let outcome: Ending | { continueWith: AgentResume };
  let hostGone = false;
  try {
    outcome = await runScope.run(async () => {
      let placed = resume;
      if (!placed) {
        const launched = await launch();
        placed = { ...launched, turn: 0, usage: status.usage, startedAt: status.startedAt, deadlineAt, lastTool: null, error: null, summary: '' };
        await setState('running', `sandbox ${launched.containerName} on ${launched.hostQueue}`);
      }
      placement.hostQueue = placed.hostQueue;
      const activeSandbox = sandboxOn(placed.hostQueue, options.maxRetries, admitted);
      const tools = toolsOn(placed.hostQueue, admitted);
      const model = modelOn(admitted && patched(MODEL_ON_HOST_PATCH) ? placed.hostQueue : null);

      let failure: string | undefined;
      let summary = placed.summary;
      const firstTurn = placed.turn;
      for (let turn = firstTurn; ; turn++) {
        if (turn >= options.maxTurns) {
          failure = `stopped after reaching the maximum of ${options.maxTurns} turns`;
          break;
        }
        if (turn - firstTurn >= turnsPerRun) {
          const carried = { usage: status.usage, lastTool: status.lastTool, error: status.error, costUsd: status.costUsd ?? null, contextManagement: status.contextManagement ?? null };
          return { continueWith: { ...placed, turn, ...carried, summary } };
        }
        const reply = await despiteWorkerLoss(() => model.callModel.executeWithOptions({ summary: modelCallSummary(turn) }, [{ agentId, turn }]));
        status.turn = turn + 1;
        addUsage(status, reply);
        status.updatedAt = new Date().toISOString();
        summary = reply.text;
        showProgress(reply.toolCalls.length > 0 ? `the model asked for ${reply.toolCalls.length} tool call${reply.toolCalls.length === 1 ? '' : 's'}` : 'the model is done');
        await tellHub();
        const spent = tokensSpent(status.usage);
        if (spent > options.tokenBudget) {
          failure = `stopped after spending ${spent} tokens, over the budget of ${options.tokenBudget}`;
          break;
        }
        if (options.costBudgetUsd !== undefined && (status.costUsd ?? 0) > options.costBudgetUsd) {
          failure = `stopped after spending an estimated $${(status.costUsd ?? 0).toFixed(4)}, over the cost budget of $${options.costBudgetUsd}`;
          break;
        }
        if (reply.toolCalls.length === 0) break;
        for (const [index, call] of reply.toolCalls.entries()) {
          status.lastTool = call.name;
          const label = toolCallSummary(turn, index, reply.toolCalls.length, call);
          showProgress(`running ${label}`);
          const result = await tools.runTool.executeWithOptions({ summary: label }, [{ agentId, agentType: input.agentType, toolCallId: call.id }]);
          if (result.oomKilled) status.error = `the ${call.name} call ran out of memory in the sandbox`;
          if (result.quotaReached) status.error = 'the workspace reached its disk quota: writes fail';
        }
      }
      showProgress('collecting the result');
      const result = await despiteWorkerLoss(() =>
        activeSandbox.collectResult.executeWithOptions({ summary: 'collect result: diff, commit, test output' }, [{ agentId, baseSha: placed.baseSha, summary }]),
      );
      const detail = `result ${result.commitSha ?? 'without changes'} on ${result.branch}, ${result.filesChanged} files changed`;
      return failure ? { state: 'failed' as const, error: failure, detail } : { state: 'completed' as const, detail };
    });
  } catch (error) {
    // A killed run may also fail first: its sandbox was removed under the activity in flight.
    if (stop.reason !== null && (isCancellation(error) || stop.reason === 'killed')) {
      outcome = stopped();
    } else {
      hostGone = hostUnreachable(error);
      outcome = { state: 'failed', error: describeFailure(error, placement.hostQueue), detail: 'run failed' };
    }
  } finally {
    deadline.cancel();
  }

  if ('continueWith' in outcome) {
    // A kill or the deadline that came as the run decided to continue still ends it (older histories continued).
    if (stop.reason === null || !patched(KILL_AT_ONCE_PATCH)) {
      // The sandbox lives on: the next run of this workflow id resumes it.
      return await continueAsNew<typeof agentRun>({ ...input, resume: outcome.continueWith });
    }
    outcome = stopped();
  }
  const ended = outcome;
  let final: Ending = ended;
  // Teardown, the final state and giving the slot back run even when the run was cancelled.
  await CancellationScope.nonCancellable(async () => {
    if (admitted) {
      // Bounded (a minute at most); a host that is gone leaves its container to its own reconciler when it comes back.
      // The time of the kill lets the host measure how long the container took to go.
      const teardown = { agentId, ...(stop.killedAt ? { killRequestedAt: stop.killedAt } : {}) };
      const hostQueue = placement.hostQueue;
      if (!hostGone && hostQueue !== null) await teardownOn(hostQueue).teardownSandbox.executeWithOptions({ summary: teardownSummary(agentId) }, [teardown]).catch(() => undefined);
    } else {
      const onHost = placement.hostQueue === null ? launcher : teardownOn(placement.hostQueue);
      await onHost.teardownSandbox({ agentId }).catch(() => launcher.teardownSandbox({ agentId }));
    }
    // A kill that arrived before the end was recorded (while collecting or tearing down) is what the operator asked for.
    const killedLate = stop.reason === 'killed' && ended.state !== 'killed';
    final = killedLate ? { state: 'killed', detail: `${stop.detail} (while ending as ${ended.state}: ${ended.detail})` } : ended;
    await setState(final.state, final.detail, final.error ?? status.error ?? undefined);
    if (admitted) await getExternalWorkflowHandle(admissionWorkflowId(workflowInfo().taskQueue)).signal(releaseSlotSignal, { agentId }).catch(() => undefined);
  });
  if (final.state === 'failed') throw ApplicationFailure.nonRetryable(final.error ?? 'agent failed', 'AgentFailed');
  return status;
}
