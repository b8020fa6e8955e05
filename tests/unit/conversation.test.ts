import {
  conversationAt,
  TranscriptGap,
  operatorMessageBlock,
  UNKNOWN_TOOL_OUTCOME,
  type PreviousToolCall,
} from '../../model-client/conversation';
import type { StoredMessage } from '../../model-client/request';
import { AgentContextSchema } from '../../shared/agent-schemas';

const context = AgentContextSchema.parse({ repository: '/repo', branch: 'main', workItems: ['fix the build'] });
const first: StoredMessage = { seq: 0, role: 'user', content: 'Work items:\n1. fix the build' };
const replyAsking = (seq: number, ...ids: string[]): StoredMessage => ({
  seq,
  role: 'assistant',
  content: [
    { type: 'text', text: 'Running tools.' },
    ...ids.map((id) => ({ type: 'tool_use' as const, id, name: 'bash', input: { command: 'true' } })),
  ],
});
const call = (id: string, status: string, output: string | null = null, isError = false): PreviousToolCall => ({
  id,
  status,
  output,
  isError,
});

/** How a turn's request is assembled from the known transcript and the tool calls of the turn before. */
describe('conversation at a turn', () => {
  it('starts with the work items, and adds the first prompt only when it is not stored yet', () => {
    expect(conversationAt(0, context, [], [])).toEqual({ messages: [first], added: [first], unknownCalls: [] });
    expect(conversationAt(0, context, [first], [])).toEqual({ messages: [first], added: [], unknownCalls: [] });
  });

  it('returns a reply an earlier attempt stored, so the model is not asked again', () => {
    const reply = replyAsking(1, 'a');
    expect(conversationAt(0, context, [first, reply], []).storedReply).toEqual(reply);
  });

  it("answers the last reply's tool calls in its order; a call that never finished is unknown to the model", () => {
    const known = [first, replyAsking(1, 'b', 'a', 'c')];
    const calls = [call('a', 'finished', 'ok', false), call('b', 'started'), call('c', 'finished', 'failed', true)];
    const conversation = conversationAt(1, context, known, calls);
    const results: StoredMessage = {
      seq: 2,
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'b', content: UNKNOWN_TOOL_OUTCOME, is_error: true },
        { type: 'tool_result', tool_use_id: 'a', content: 'ok', is_error: false },
        { type: 'tool_result', tool_use_id: 'c', content: 'failed', is_error: true },
      ],
    };
    expect(conversation).toEqual({ messages: [...known, results], added: [results], unknownCalls: ['b'] });
  });

  it('adds nothing when the tool results are stored already', () => {
    const known = [first, replyAsking(1, 'a'), { seq: 2, role: 'user' as const, content: 'stored results' }];
    expect(conversationAt(1, context, known, [call('a', 'finished', 'ok')])).toEqual({
      messages: known,
      added: [],
      unknownCalls: [],
    });
  });

  it('refuses a transcript with a gap: the turn before has no reply', () => {
    expect(() => conversationAt(2, context, [first, replyAsking(1, 'a')], [])).toThrow(TranscriptGap);
  });

  it("puts an operator's messages after the tool results, and after the first prompt at turn 0", () => {
    const said = [
      { position: 1, text: 'use tabs' },
      { position: 2, text: 'and add a test' },
    ];
    const atStart = conversationAt(0, context, [], [], said);
    expect(atStart.added[0]?.content).toEqual([
      { type: 'text', text: first.content },
      ...said.map(operatorMessageBlock),
    ]);
    const later = conversationAt(1, context, [first, replyAsking(1, 'a')], [call('a', 'finished', 'ok')], said);
    expect(later.added[0]?.content).toEqual([
      { type: 'tool_result', tool_use_id: 'a', content: 'ok', is_error: false },
      ...said.map(operatorMessageBlock),
    ]);
    expect(operatorMessageBlock(said[0]!).text).toContain('operator');
    // After a reply that asked for nothing, the messages are the whole request.
    const afterDone = conversationAt(1, context, [first, replyAsking(1)], [], said.slice(0, 1));
    expect(afterDone.added[0]?.content).toEqual([operatorMessageBlock(said[0]!)]);
  });

  it('keeps what a retry finds stored: messages are not added twice', () => {
    const stored = { seq: 2, role: 'user' as const, content: 'stored results and messages' };
    const known = [first, replyAsking(1, 'a'), stored];
    expect(conversationAt(1, context, known, [], [{ position: 1, text: 'again' }]).added).toEqual([]);
  });
});
