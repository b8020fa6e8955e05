import {
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { AGENT_STATE } from '../../shared/search-attributes';
import type { AgentState } from '../../shared/vocabulary';
import { admissionWorkflowId, releaseSlotSignal, slotGrantedSignal } from '../admission/contract';
import { describeFailure, despiteWorkerLoss, hostUnreachable, onHost, records } from './proxies';
import {
  agentStatusQuery,
  killAgentSignal,
  AGENT_RUN_FAILURES,
  type AgentResume,
  type AgentRunInput,
  type AgentStatus,
} from './contract';
import { progressDetails, recordStateSummary, teardownSummary } from './labels';
import { startHubEvents } from './hub-events';
import { admitAndLaunch } from './launch';
import { RunDeadline } from './deadline';
import { startSteering } from './steering';
import * as run from './run-state';
import { runTurns } from './turns';

/**
 * One agent run: get a slot, launch the sandbox, loop model call -> tool calls until the model is
 * done, collect the result, tear down. `kill` and the per-task timeout cancel the run; teardown always
 * runs. Every `turnsPerRun` turns the run continues as new with a small resume record, so a 500-turn
 * agent never comes near Temporal's history limits.
 */
export async function agentRun(input: AgentRunInput): Promise<AgentStatus> {
  const { agentId, options, resume } = input;
  const status = run.initialStatus(input, new Date().toISOString());
  const stop: run.Stop = { reason: null, detail: '' };
  const grant = { hostId: input.admittedOn ?? null };
  let hostQueue: string | null = resume?.hostQueue ?? null;
  const runScope = new CancellationScope();
  const deadline = new RunDeadline(
    resume?.deadlineAt ?? Date.now() + options.timeout * 1000,
    `deadline: per-task timeout of ${options.timeout} s`,
    () => {
      run.deadlineReached(stop);
      runScope.cancel();
    },
  );

  // ---- handlers
  setHandler(agentStatusQuery, () => status);
  setHandler(slotGrantedSignal, ({ hostId }) => {
    grant.hostId ??= hostId;
  });
  setHandler(killAgentSignal, ({ reason }) => {
    run.requestKill(stop, reason, new Date().toISOString());
    runScope.cancel();
  });

  // ---- what the run tells: the Web UI, the database, and the hub that spawned it (if one did)
  const showProgress = (note: string | null): void =>
    setCurrentDetails(progressDetails(status, options.maxTurns, note));
  const tellHub = startHubEvents(input, status, deadline.at);
  /** The state in the status, the Web UI and the visibility search; the database is told separately. */
  function showState(state: AgentState, detail?: string, error?: string): void {
    status.state = state;
    status.updatedAt = new Date().toISOString();
    if (error !== undefined) status.error = error;
    upsertSearchAttributes([{ key: AGENT_STATE, value: state }]);
    showProgress(detail ?? null);
  }
  async function enterState(state: AgentState, detail?: string, error?: string): Promise<void> {
    showState(state, detail, error);
    const record = {
      agentId,
      state,
      ...(detail !== undefined ? { detail } : {}),
      ...(error !== undefined ? { error } : {}),
    };
    await records.recordAgentState.executeWithOptions({ summary: recordStateSummary(state) }, [record]);
    await tellHub();
  }
  const steering = startSteering({ input, status, deadline, enterState, showProgress });
  showProgress(resume ? `resumed at turn ${status.turn}` : null);

  // ---- main
  // The tool or model call in flight learns of a kill only at its next heartbeat: the container goes now.
  const sandboxUp = (): boolean => ['running', 'input_required', 'paused'].includes(status.state);
  void condition(() => stop.reason === 'killed' && sandboxUp()).then(async () => {
    if (hostQueue === null) return;
    const removal = { agentId, ...(stop.killedAt ? { killRequestedAt: stop.killedAt } : {}) };
    const { sandbox } = onHost(hostQueue, options.maxRetries);
    const summary = 'kill: remove the sandbox now';
    await sandbox.removeSandboxContainer.executeWithOptions({ summary }, [removal]).catch(() => undefined);
  });
  deadline.start();

  let outcome: run.Ending | { continueWith: AgentResume };
  let hostGone = false;
  try {
    outcome = await runScope.run(async () => {
      let sandbox = resume;
      if (!sandbox) {
        const onHostChosen = (queue: string): void => {
          hostQueue = queue;
        };
        const launched = await admitAndLaunch({ input, deadlineAt: deadline.at, grant, enterState, onHostChosen });
        showState('running', `sandbox ${launched.containerName} on ${launched.hostQueue}`); // the launch recorded it
        await tellHub();
        sandbox = run.resumeAt(launched, deadline.at, status, '');
      }
      const turnsPerRun = input.turnsPerRun ?? run.DEFAULT_TURNS_PER_RUN;
      const turns = { input, status, sandbox, firstTurn: sandbox.turn, summary: sandbox.summary, turnsPerRun };
      const ended = await runTurns({ ...turns, showProgress, tellHub, steering });
      if (!ended.done) {
        const next = run.resumeAt(sandbox, deadline.at, status, ended.summary);
        return { continueWith: { ...next, ...steering.resumeState() } };
      }
      steering.close();
      showProgress('collecting the result');
      const { sandbox: onItsHost, delivery } = onHost(sandbox.hostQueue, options.maxRetries);
      const collect = { agentId, baseSha: sandbox.baseSha, summary: ended.summary };
      const summary = 'collect result: diff, commit, test output';
      const result = await despiteWorkerLoss(() => onItsHost.collectResult.executeWithOptions({ summary }, [collect]));
      let detail =
        `result ${result.commitSha ?? 'without changes'} on ${result.branch}, ` +
        `${result.filesChanged} files changed`;
      // A completed run's commit goes where its task asked; a push that fails is reported, never the run's failure.
      if (!ended.failure && options.delivery?.push && result.commitSha) {
        const target = options.delivery.branch ?? result.branch;
        showProgress(`pushing the result to ${target}`);
        const deliver = { summary: `deliver: push ${target}` };
        status.delivery = await despiteWorkerLoss(() =>
          delivery.deliverResult.executeWithOptions(deliver, [{ agentId }]),
        ).catch((error: unknown) => {
          if (isCancellation(error)) throw error;
          return null;
        });
        detail += status.delivery?.pushed
          ? `, pushed to ${status.delivery.branch}`
          : `, not pushed${status.delivery ? ` (${status.delivery.failure})` : ''}`;
      }
      return ended.failure
        ? { state: 'failed' as const, error: ended.failure, detail }
        : { state: 'completed' as const, detail };
    });
  } catch (error) {
    // A killed run may also fail first: its sandbox was removed under the activity in flight.
    if (stop.reason !== null && (isCancellation(error) || stop.reason === 'killed')) {
      outcome = run.stoppedEnding(stop, options.timeout);
    } else {
      hostGone = hostUnreachable(error);
      outcome = { state: 'failed', error: describeFailure(error, hostQueue), detail: 'run failed' };
    }
  } finally {
    deadline.stop();
    steering.close();
  }

  if ('continueWith' in outcome) {
    // The sandbox lives on: the next run of this workflow id resumes it, unless a kill or the deadline came.
    if (stop.reason === null) return await continueAsNew<typeof agentRun>({ ...input, resume: outcome.continueWith });
    outcome = run.stoppedEnding(stop, options.timeout);
  }
  const ended = outcome;
  // Teardown, the final state and giving the slot back run even when the run was cancelled.
  const final = await CancellationScope.nonCancellable(async () => {
    // Bounded; a host that is gone leaves its container to its own reconciler when it comes back.
    const teardown = { agentId, ...(stop.killedAt ? { killRequestedAt: stop.killedAt } : {}) };
    if (!hostGone && hostQueue !== null) {
      const onItsHost = onHost(hostQueue, options.maxRetries).teardown;
      await onItsHost.teardownSandbox
        .executeWithOptions({ summary: teardownSummary(agentId) }, [teardown])
        .catch(() => undefined);
    }
    const last = run.finalEnding(stop, ended);
    await enterState(last.state, last.detail, last.error ?? status.error ?? undefined);
    const admissionQueue = getExternalWorkflowHandle(admissionWorkflowId(workflowInfo().taskQueue));
    await admissionQueue.signal(releaseSlotSignal, { agentId }).catch(() => undefined);
    return last;
  });
  if (final.state === 'failed')
    throw ApplicationFailure.nonRetryable(final.error ?? 'agent failed', AGENT_RUN_FAILURES.agentFailed);
  return status;
}
