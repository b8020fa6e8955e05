import type { LaunchedSandbox } from './contract';
import { despiteWorkerLoss, onHost } from './proxies';
import type { AgentRunInput, AgentStatus } from './contract';
import { modelCallSummary, toolCallSummary } from './labels';
import { addTurn, budgetExceeded, turnLimitReached } from './run-state';
import type { Steering } from './steering';

export interface TurnsContext {
  input: AgentRunInput;
  status: AgentStatus;
  sandbox: LaunchedSandbox;
  /** Where this run of the chain starts, and the model's latest text so far. */
  firstTurn: number;
  summary: string;
  turnsPerRun: number;
  showProgress: (note: string) => void;
  tellHub: () => Promise<void>;
  steering: Steering;
}

/** How the turns ended: the model is done (or a budget stopped it), or this run continues as new. */
export type TurnsEnd = { done: true; failure: string | null; summary: string } | { done: false; summary: string };

/**
 * The agent's loop: a model call, then the tool calls it asked for, until it asks for none and no operator message
 * waits. An operator's pause holds the loop before each step; a gated tool call waits for its decision.
 */
export async function runTurns(context: TurnsContext): Promise<TurnsEnd> {
  const { input, status, firstTurn, steering } = context;
  const { agentId, options } = input;
  const { hostQueue } = context.sandbox;
  const { model, tools } = onHost(hostQueue, options.maxRetries);
  let summary = context.summary;
  for (let turn = firstTurn; ; turn++) {
    const limit = turnLimitReached(options, turn);
    if (limit) return { done: true, failure: limit, summary };
    if (turn - firstTurn >= context.turnsPerRun) return { done: false, summary };
    await steering.holdIfPaused(hostQueue);
    const messages = [...steering.waitingMessages];
    const request = { agentId, turn, ...(messages.length > 0 ? { messages } : {}) };
    const call = () => model.callModel.executeWithOptions({ summary: modelCallSummary(turn) }, [request]);
    const reply = await despiteWorkerLoss(call);
    steering.delivered(messages.length);
    addTurn(status, turn, reply, new Date().toISOString());
    summary = reply.text;
    const asked = reply.toolCalls.length;
    context.showProgress(
      asked > 0 ? `the model asked for ${asked} tool call${asked === 1 ? '' : 's'}` : 'the model is done',
    );
    await context.tellHub();
    const overBudget = budgetExceeded(status, options);
    if (overBudget) return { done: true, failure: overBudget, summary };
    if (asked === 0 && steering.waitingMessages.length === 0) return { done: true, failure: null, summary };
    for (const [index, toolCall] of reply.toolCalls.entries()) {
      await steering.holdIfPaused(hostQueue);
      const gated = toolCall.approvalRule;
      if (gated !== undefined && !(await steering.approval(hostQueue, toolCall, gated))) continue; // denied
      status.lastTool = toolCall.name;
      const label = toolCallSummary(turn, index, asked, toolCall);
      context.showProgress(`running ${label}`);
      const args = { agentId, agentType: input.agentType, toolCallId: toolCall.id };
      const result = await tools.runTool.executeWithOptions({ summary: label }, [args]);
      if (result.oomKilled) status.error = `the ${toolCall.name} call ran out of memory in the sandbox`;
      if (result.quotaReached) status.error = 'the workspace reached its disk quota: writes fail';
    }
  }
}
