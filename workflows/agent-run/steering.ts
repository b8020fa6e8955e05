import { ApplicationFailure, condition, setHandler } from '@temporalio/workflow';
import type { OperatorMessage } from '../../model-client/conversation';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import {
  decideApprovalUpdate,
  pauseUpdate,
  resumeUpdate,
  sendMessageUpdate,
  STEERING_REFUSALS,
  type AgentResume,
  type AgentRunInput,
  type AgentStatus,
  type ApprovalDecision,
} from './contract';
import type { RunDeadline } from './deadline';
import { onHost, records } from './proxies';

/** Messages waiting for the next turn at most: past it, the operator is asked to wait. */
const MAX_WAITING_MESSAGES = 20;

export interface SteeringDeps {
  input: AgentRunInput;
  status: AgentStatus;
  deadline: RunDeadline;
  enterState: (state: AgentState, detail?: string) => Promise<void>;
  showProgress: (note: string | null) => void;
}

/** What the turn loop asks of an operator's steering. */
export interface Steering {
  /** The messages the next model call carries (they stay until it succeeded: a retry carries them again). */
  readonly waitingMessages: readonly OperatorMessage[];
  /** The model call that carried the first `count` succeeded: they are in the conversation. */
  delivered(count: number): void;
  /** The turns ended (the result is being collected): no message, pause or decision is taken any more. */
  close(): void;
  /** Waits, with the sandbox paused, while an operator's pause holds; returns at once otherwise. */
  holdIfPaused(hostQueue: string): Promise<void>;
  /** Waits, with the sandbox paused, for a decision on a gated tool call; true when the call may run. */
  approval(hostQueue: string, call: { id: string; name: string; label?: string }, ruleIndex: number): Promise<boolean>;
  /** What the next run of the chain takes over. */
  resumeState(): Pick<AgentResume, 'messages' | 'messagesReceived' | 'pauseRequested'>;
}

const refuse = (type: string, message: string): ApplicationFailure =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/**
 * An operator's say in a live run: messages for the model, decisions on gated tool calls, pause and resume. Each is a
 * workflow update whose validator refuses what cannot apply (nothing is written to the history then); the turn loop
 * takes what was accepted at its next step.
 */
export function startSteering(deps: SteeringDeps): Steering {
  const { input, status, deadline } = deps;
  const { agentId, options, resume } = input;
  const messages: OperatorMessage[] = [...(resume?.messages ?? [])];
  let received = resume?.messagesReceived ?? 0;
  let open = true;
  let pauseRequested = resume?.pauseRequested ?? false;
  let decision: ApprovalDecision | null = null;
  const decided: string[] = [];
  const showCounts = (): void => {
    status.messages = { received, delivered: received - messages.length };
    status.pauseRequested = pauseRequested;
  };
  showCounts();

  const ensureOpen = (): void => {
    if (!open || isTerminalState(status.state))
      throw refuse(STEERING_REFUSALS.finished, `the agent's run has ended (${status.state})`);
  };

  setHandler(
    sendMessageUpdate,
    ({ text }) => {
      received += 1;
      messages.push({ position: received, text });
      showCounts();
      deps.showProgress(`message ${received} from an operator waits for the next turn`);
      return { position: received };
    },
    {
      validator: (_message: { text: string }) => {
        ensureOpen();
        if (messages.length >= MAX_WAITING_MESSAGES)
          throw refuse(
            STEERING_REFUSALS.tooManyMessages,
            `${MAX_WAITING_MESSAGES} messages already wait for the next turn`,
          );
      },
    },
  );
  setHandler(
    decideApprovalUpdate,
    (asked) => {
      decision = asked;
      decided.push(asked.toolCallId);
      return { toolCallId: asked.toolCallId, decision: asked.decision };
    },
    {
      validator: ({ toolCallId }: ApprovalDecision) => {
        ensureOpen();
        if (decided.includes(toolCallId))
          throw refuse(STEERING_REFUSALS.alreadyDecided, `tool call ${toolCallId} was already decided`);
        if (status.pendingApproval?.toolCallId !== toolCallId)
          throw refuse(STEERING_REFUSALS.unknownToolCall, `tool call ${toolCallId} does not wait for an approval`);
      },
    },
  );
  setHandler(
    pauseUpdate,
    () => {
      pauseRequested = true;
      showCounts();
      deps.showProgress('an operator asked for a pause: it takes effect at the next step');
      return { state: status.state, pauseRequested };
    },
    { validator: ensureOpen },
  );
  setHandler(
    resumeUpdate,
    () => {
      pauseRequested = false;
      showCounts();
      return { state: status.state, pauseRequested };
    },
    {
      validator: () => {
        ensureOpen();
        if (!pauseRequested) throw refuse(STEERING_REFUSALS.notPaused, 'the agent is not paused');
      },
    },
  );

  /**
   * Pauses the sandbox (and the deadline, unless waits count) in `state` while `wait` lasts, then runs on; `over` says
   * how the wait ended, in the state's detail.
   */
  async function whileSuspended<T>(
    hostQueue: string,
    state: AgentState,
    detail: string,
    wait: () => Promise<T>,
    over: (outcome: T) => string,
  ) {
    const { suspend } = onHost(hostQueue, options.maxRetries);
    await suspend.pauseSandbox.executeWithOptions({ summary: `pause sandbox: ${detail}` }, [{ agentId }]);
    if (!options.waitsCountTowardTimeout) deadline.pause();
    await deps.enterState(state, detail);
    const outcome = await wait();
    await suspend.resumeSandbox.executeWithOptions({ summary: 'resume sandbox' }, [{ agentId }]);
    deadline.resume();
    await deps.enterState('running', over(outcome));
    return outcome;
  }

  return {
    get waitingMessages() {
      return messages;
    },
    delivered(count) {
      messages.splice(0, count);
      showCounts();
    },
    close() {
      open = false;
    },
    async holdIfPaused(hostQueue) {
      if (!pauseRequested) return;
      const resumed = () => condition(() => !pauseRequested);
      await whileSuspended(hostQueue, 'paused', 'paused by an operator', resumed, () => 'resumed by an operator');
    },
    async approval(hostQueue, call, ruleIndex) {
      const rule = options.approvals?.[ruleIndex];
      if (!rule) return true; // the options are fixed for the run: a reply never names a rule it does not have
      const label = call.label ?? call.name;
      const now = Date.now();
      const expiresAt = rule.timeoutSeconds ? new Date(now + rule.timeoutSeconds * 1000).toISOString() : null;
      const { onTimeout } = rule;
      const pending = { toolCallId: call.id, tool: call.name, label, rule: ruleIndex, onTimeout, expiresAt };
      status.pendingApproval = { ...pending, requestedAt: new Date(now).toISOString() };
      decision = null;
      const about = { agentId, toolCallId: call.id, label, rule: ruleIndex };
      await records.recordApproval.executeWithOptions({ summary: `approval requested: ${label}` }, [
        { ...about, phase: 'requested', expiresAt, onTimeout },
      ]);
      const decisionMade = async (): Promise<boolean> => {
        const decidedInTime = rule.timeoutSeconds
          ? await condition(() => decision !== null, rule.timeoutSeconds * 1000)
          : await condition(() => decision !== null).then(() => true);
        const made = decidedInTime && decision ? decision : null;
        const verdict = made?.decision ?? onTimeout;
        const record = {
          ...about,
          phase: 'decided' as const,
          decision: verdict,
          decidedBy: made ? ('operator' as const) : ('timeout' as const),
          note: made?.note ?? null,
        };
        if (!made) decided.push(call.id); // a late decision is told it came too late
        await records.recordApproval.executeWithOptions({ summary: `approval ${verdict}: ${label}` }, [record]);
        status.pendingApproval = null;
        return verdict === 'approve';
      };
      const over = (runs: boolean): string => `${runs ? 'approved' : 'denied'}: ${label}`;
      return await whileSuspended(hostQueue, 'input_required', `waits for approval: ${label}`, decisionMade, over);
    },
    resumeState: () => ({ messages: [...messages], messagesReceived: received, pauseRequested }),
  };
}
