import type Anthropic from '@anthropic-ai/sdk';
import type { AgentContext } from '../shared/agent-schemas';
import { firstPrompt, type StoredMessage } from './request';

/** A message with seq 2t+1 is the model's reply in turn t; seq 2t (t > 0) holds the tool results it answers. */
export const replySeq = (turn: number): number => 2 * turn + 1;

export const UNKNOWN_TOOL_OUTCOME =
  'The outcome of this tool call is unknown: the worker running it ' +
  'stopped before reporting. It may or may not have taken effect; inspect ' +
  'the workspace before repeating it.';

/** A tool call of the turn before, as stored. */
export interface PreviousToolCall {
  id: string;
  status: string;
  output: string | null;
  isError: boolean;
}

export interface Conversation {
  /** The messages of the request, in order. */
  messages: StoredMessage[];
  /** What this turn adds (the first prompt, or the tool results of the turn before): stored with the reply. */
  added: StoredMessage[];
  /** Calls of the turn before that never finished: reported to the model as unknown, and recorded so. */
  unknownCalls: string[];
  /** Set when an earlier attempt already stored this turn's reply: the model is not asked again. */
  storedReply?: StoredMessage;
}

/** An operator's message (POST /agents/:agentId/messages) on its way into the conversation; position counts from 1. */
export interface OperatorMessage {
  position: number;
  text: string;
}

/** How an operator's message reads to the model: after the tool results, marked as the operator's. */
export const operatorMessageBlock = (message: OperatorMessage): Anthropic.TextBlockParam => ({
  type: 'text',
  text: `Message from the operator who runs this task:\n${message.text}`,
});

/** The turn before has no stored reply: the transcript has a gap, and no request can be made from it. */
export class TranscriptGap extends Error {
  constructor(turn: number) {
    super(`turn ${turn} has no stored reply`);
    this.name = 'TranscriptGap';
  }
}

/**
 * The conversation up to `turn`, from the messages known so far (cached and stored, in order) and the tool calls of
 * the turn before: the first prompt at turn 0, else the tool results the model's last reply asked for, in its order;
 * then the operator's messages that arrived since. What was stored for this turn before (a retry) is kept as it is.
 */
export function conversationAt(
  turn: number,
  context: AgentContext,
  known: StoredMessage[],
  previousCalls: PreviousToolCall[],
  operatorMessages: OperatorMessage[] = [],
): Conversation {
  const storedReply = known.find((message) => message.seq === replySeq(turn));
  if (storedReply) return { messages: known, added: [], unknownCalls: [], storedReply };
  const said = operatorMessages.map(operatorMessageBlock);
  if (turn === 0) {
    const prompt = firstPrompt(context);
    const first: StoredMessage = {
      seq: 0,
      role: 'user',
      content: said.length > 0 ? [{ type: 'text', text: prompt }, ...said] : prompt,
    };
    return known.length > 0
      ? { messages: known, added: [], unknownCalls: [] }
      : { messages: [first], added: [first], unknownCalls: [] };
  }
  if (known.some((message) => message.seq === 2 * turn)) return { messages: known, added: [], unknownCalls: [] };
  const previous = known.find((message) => message.seq === replySeq(turn - 1));
  if (!previous) throw new TranscriptGap(turn - 1);
  const byId = new Map(previousCalls.map((call) => [call.id, call]));
  const order = (previous.content as Anthropic.ContentBlock[])
    .filter((block) => block.type === 'tool_use')
    .map((block) => block.id);
  const content: Anthropic.ToolResultBlockParam[] = order.map((id) => {
    const call = byId.get(id);
    const finished = call?.status === 'finished';
    return {
      type: 'tool_result',
      tool_use_id: id,
      content: finished ? (call.output ?? '') : UNKNOWN_TOOL_OUTCOME,
      is_error: finished ? call.isError : true,
    };
  });
  const results: StoredMessage = { seq: 2 * turn, role: 'user', content: [...content, ...said] };
  const unknownCalls = previousCalls.filter((call) => call.status !== 'finished').map((call) => call.id);
  return { messages: [...known, results], added: [results], unknownCalls };
}
