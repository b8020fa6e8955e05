import {
  ApplicationFailure,
  CancellationScope,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { LaunchedSandbox } from '../activities/agent-sandbox';
import { agentStatusQuery, killAgentSignal, type AgentResume, type AgentRunInput, type AgentState, type AgentStatus } from '../shared/agents';
import { AGENT_STATE } from '../shared/search-attributes';

type SandboxActivities = Pick<Activities, 'runTool' | 'collectResult' | 'teardownSandbox'>;

const QUEUED_RETRY_INTERVAL = '3 seconds';
const DEFAULT_TURNS_PER_RUN = 50;

const records = proxyActivities<Pick<Activities, 'recordAgentState'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/** Sandbox activities run on the task queue of the host that owns the container. */
function sandboxOn(taskQueue: string, maxRetries: number) {
  return proxyActivities<SandboxActivities>({
    taskQueue,
    startToCloseTimeout: '20 minutes',
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: maxRetries + 1, nonRetryableErrorTypes: ['SandboxFailed'] },
  });
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
    startedAt: resume?.startedAt ?? now,
    updatedAt: now,
    error: resume?.error ?? null,
  };
  setHandler(agentStatusQuery, () => status);
  const deadlineAt = resume?.deadlineAt ?? Date.now() + options.timeout * 1000;

  const launcher = proxyActivities<Pick<Activities, 'launchSandbox' | 'teardownSandbox'>>({
    startToCloseTimeout: '15 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: options.maxRetries + 1, nonRetryableErrorTypes: ['SandboxFailed'] },
  });
  const model = proxyActivities<Pick<Activities, 'callModel'>>({
    startToCloseTimeout: '10 minutes',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: options.maxRetries + 1,
      nonRetryableErrorTypes: ['ModelRequestRejected', 'ModelNotConfigured'],
    },
  });

  async function setState(state: AgentState, detail?: string, error?: string): Promise<void> {
    status.state = state;
    status.updatedAt = new Date().toISOString();
    if (error !== undefined) status.error = error;
    upsertSearchAttributes([{ key: AGENT_STATE, value: state }]);
    await records.recordAgentState({ agentId, state, ...(detail !== undefined ? { detail } : {}), ...(error !== undefined ? { error } : {}) });
  }

  /** Waits for a free slot (state queued while every host is full) and launches the sandbox. */
  async function launch(): Promise<LaunchedSandbox> {
    for (;;) {
      const attempt = await launcher.launchSandbox({ agentId, workspaceId: input.workspaceId, context: input.context, options, deadline: new Date(deadlineAt).toISOString() });
      if (attempt.launched) return attempt;
      if (status.state !== 'queued') await setState('queued', 'waiting for a free sandbox slot');
      await sleep(QUEUED_RETRY_INTERVAL);
    }
  }

  let sandbox: SandboxActivities | null = resume ? sandboxOn(resume.hostQueue, options.maxRetries) : null;
  // Set by the kill signal or the deadline; an object so the checks below see the handlers' writes.
  const stop: { reason: 'killed' | 'timed_out' | null; detail: string } = { reason: null, detail: '' };
  const runScope = new CancellationScope();
  setHandler(killAgentSignal, ({ reason }) => {
    stop.reason ??= 'killed';
    stop.detail = reason ?? 'kill requested';
    runScope.cancel();
  });
  const deadline = new CancellationScope();
  deadline
    .run(async () => {
      await sleep(Math.max(1, deadlineAt - Date.now()));
      stop.reason ??= 'timed_out';
      runScope.cancel();
    })
    .catch(() => undefined); // cancelled when the run ends first

  let outcome: { state: AgentState; error?: string; detail: string } | { continueWith: AgentResume };
  try {
    outcome = await runScope.run(async () => {
      let placement = resume;
      if (!placement) {
        const launched = await launch();
        placement = { ...launched, turn: 0, usage: status.usage, startedAt: status.startedAt, deadlineAt, lastTool: null, error: null, summary: '' };
        await setState('running', `sandbox ${launched.containerName} on ${launched.hostQueue}`);
      }
      const activeSandbox = sandboxOn(placement.hostQueue, options.maxRetries);
      sandbox = activeSandbox;

      let failure: string | undefined;
      let summary = placement.summary;
      const firstTurn = placement.turn;
      for (let turn = firstTurn; ; turn++) {
        if (turn >= options.maxTurns) {
          failure = `stopped after reaching the maximum of ${options.maxTurns} turns`;
          break;
        }
        if (turn - firstTurn >= turnsPerRun) {
          return { continueWith: { ...placement, turn, usage: status.usage, lastTool: status.lastTool, error: status.error, summary } };
        }
        const reply = await model.callModel({ agentId, turn });
        status.turn = turn + 1;
        status.usage.inputTokens += reply.usage.inputTokens;
        status.usage.outputTokens += reply.usage.outputTokens;
        status.updatedAt = new Date().toISOString();
        summary = reply.text;
        const spent = status.usage.inputTokens + status.usage.outputTokens;
        if (spent > options.tokenBudget) {
          failure = `stopped after spending ${spent} tokens, over the budget of ${options.tokenBudget}`;
          break;
        }
        if (reply.toolCalls.length === 0) break;
        for (const call of reply.toolCalls) {
          status.lastTool = call.name;
          const result = await activeSandbox.runTool({ agentId, agentType: input.agentType, toolCallId: call.id });
          if (result.oomKilled) status.error = `the ${call.name} call ran out of memory in the sandbox`;
        }
      }
      const result = await activeSandbox.collectResult({ agentId, baseSha: placement.baseSha, summary });
      const detail = `result ${result.commitSha ?? 'without changes'} on ${result.branch}, ${result.filesChanged} files changed`;
      return failure ? { state: 'failed' as const, error: failure, detail } : { state: 'completed' as const, detail };
    });
  } catch (error) {
    if (isCancellation(error) && stop.reason !== null) {
      outcome = stop.reason === 'killed' ? { state: 'killed', detail: stop.detail } : { state: 'timed_out', error: `timed out after ${options.timeout} s`, detail: 'per-task timeout' };
    } else {
      const message = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      outcome = { state: 'failed', error: message, detail: 'run failed' };
    }
  } finally {
    deadline.cancel();
  }

  if ('continueWith' in outcome) {
    // The sandbox lives on: the next run of this workflow id resumes it.
    return await continueAsNew<typeof agentRun>({ ...input, resume: outcome.continueWith });
  }
  const final = outcome;
  // Teardown and the final state run even when the run was cancelled.
  await CancellationScope.nonCancellable(async () => {
    const teardown = sandbox ?? launcher;
    await teardown.teardownSandbox({ agentId }).catch(() => launcher.teardownSandbox({ agentId }));
    await setState(final.state, final.detail, final.error ?? status.error ?? undefined);
  });
  if (final.state === 'failed') throw ApplicationFailure.nonRetryable(final.error ?? 'agent failed', 'AgentFailed');
  return status;
}
