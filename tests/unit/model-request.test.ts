import type Anthropic from '@anthropic-ai/sdk';
import {
  clearedToolResult,
  ContextOverflowError,
  fitToContext,
  withCacheBreakpoints,
  type StoredMessage,
} from '../../model-client/request';

/** A transcript of `turns` bash calls whose results are `resultSize` characters each. */
function transcript(turns: number, resultSize: number): StoredMessage[] {
  const messages: StoredMessage[] = [{ seq: 0, role: 'user', content: 'Work items:\n1. do it' }];
  for (let turn = 0; turn < turns; turn++) {
    messages.push({
      seq: 2 * turn + 1,
      role: 'assistant',
      content: [{ type: 'tool_use', id: `toolu_${turn}`, name: 'bash', input: { command: `step ${turn}` } }],
    });
    messages.push({
      seq: 2 * turn + 2,
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: `toolu_${turn}`, content: `${turn}:`.padEnd(resultSize, 'x') }],
    });
  }
  return messages;
}
const prefix = {
  system: 'You are a coding agent.',
  tools: [{ type: 'bash_20250124' as const, name: 'bash' as const }],
};
const resultOf = (message: Anthropic.MessageParam | undefined): string =>
  JSON.stringify((message?.content as Anthropic.ToolResultBlockParam[] | undefined)?.[0]?.content);

describe('fitting a transcript to the context window', () => {
  it('sends the transcript unchanged while it fits', () => {
    const messages = transcript(5, 1000);
    const fitted = fitToContext(prefix, messages, { budgetTokens: 10_000, tokensPerChar: 0.25, clearedThrough: 0 });
    expect(fitted.messages).toEqual(messages.map(({ role, content }) => ({ role, content })));
    expect(fitted).toMatchObject({ clearedThrough: 0, clearedToolResults: 0, clearedNow: false });
  });

  it(
    'clears the oldest tool results first, keeps the latest, and stays ' +
      'under the budget with a marker the model reads',
    () => {
      const messages = transcript(20, 2000);
      const original = JSON.stringify(messages);
      const fitted = fitToContext(prefix, messages, { budgetTokens: 6000, tokensPerChar: 0.25, clearedThrough: 0 });
      expect(fitted.clearedNow).toBe(true);
      expect(fitted.estimatedTokens).toBeLessThanOrEqual(6000 * 0.6);
      expect(resultOf(fitted.messages[2])).toContain(
        clearedToolResult('bash `step 0`', JSON.stringify(`0:`.padEnd(2000, 'x')).length),
      );
      expect(resultOf(fitted.messages.at(-1))).toContain('19:xxx');
      expect(fitted.clearedToolResults).toBe(fitted.clearedThrough / 2);
      // Tool calls and their ids stay: only the results' contents are replaced, and the stored transcript is untouched.
      expect(fitted.messages.filter((message) => message.role === 'assistant')).toHaveLength(20);
      expect(JSON.stringify(messages)).toBe(original);
    },
  );

  it('keeps what it cleared cleared on the next turn, so the cached prefix stays the same', () => {
    const first = fitToContext(prefix, transcript(20, 2000), {
      budgetTokens: 6000,
      tokensPerChar: 0.25,
      clearedThrough: 0,
    });
    const next = fitToContext(prefix, transcript(21, 2000), {
      budgetTokens: 6000,
      tokensPerChar: 0.25,
      clearedThrough: first.clearedThrough,
    });
    expect(next.clearedNow).toBe(false);
    expect(next.clearedThrough).toBe(first.clearedThrough);
    expect(next.messages.slice(0, first.messages.length - 1)).toEqual(first.messages.slice(0, -1));
  });

  it('also shortens the long arguments of cleared tool calls (a created file’s content), keeping their paths', () => {
    const messages: StoredMessage[] = [{ seq: 0, role: 'user', content: 'Work items' }];
    for (let turn = 0; turn < 10; turn++) {
      messages.push({
        seq: 2 * turn + 1,
        role: 'assistant',
        content: [
          {
            type: 'tool_use',
            id: `toolu_${turn}`,
            name: 'str_replace_based_edit_tool',
            input: { command: 'create', path: `f${turn}.txt`, file_text: 'z'.repeat(3000) },
          },
        ],
      });
      messages.push({
        seq: 2 * turn + 2,
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: `toolu_${turn}`, content: 'File created' }],
      });
    }
    const fitted = fitToContext(prefix, messages, { budgetTokens: 5000, tokensPerChar: 0.25, clearedThrough: 0 });
    const firstCall = (fitted.messages[1]?.content as Anthropic.ToolUseBlockParam[])[0];
    expect(firstCall?.input).toEqual({
      command: 'create',
      path: 'f0.txt',
      file_text: '[cleared to save context: 3000 characters]',
    });
    // The latest call and its result stay whole.
    expect(JSON.stringify(fitted.messages.at(-2))).toContain('z'.repeat(3000));
    expect(fitted.estimatedTokens).toBeLessThanOrEqual(5000);
  });

  it('says so when even the cleared transcript cannot fit', () => {
    expect(() =>
      fitToContext(prefix, transcript(2, 50_000), { budgetTokens: 5000, tokensPerChar: 0.25, clearedThrough: 0 }),
    ).toThrow(ContextOverflowError);
  });
});

describe('prompt-cache breakpoints', () => {
  it('marks the tools, the system prompt, the previous request’s last message and the latest one: four at most', () => {
    const messages = transcript(3, 10).map(({ role, content }) => ({ role, content }));
    const cached = withCacheBreakpoints(prefix.tools, prefix.system, messages);
    expect(cached.tools.at(-1)).toMatchObject({ cache_control: { type: 'ephemeral' } });
    expect(cached.system).toEqual([{ type: 'text', text: prefix.system, cache_control: { type: 'ephemeral' } }]);
    const marked = cached.messages.map((message) => JSON.stringify(message).includes('cache_control'));
    expect(marked).toEqual([false, false, false, false, true, false, true]);
    // A first request: its only message, given as a string, becomes a marked text block.
    const first = withCacheBreakpoints(prefix.tools, prefix.system, [{ role: 'user', content: 'Work items' }]);
    expect(first.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Work items', cache_control: { type: 'ephemeral' } }] },
    ]);
  });
});
