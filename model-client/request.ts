import type Anthropic from '@anthropic-ai/sdk';
import type { AgentContext } from '../shared/agent-schemas';
import type { AgentType } from '../shared/vocabulary';
import { toolCallLabel, type AgentTool } from '../sandbox-runtime/agent-tools';

/**
 * What one model call sends, built from the stored transcript: the system prompt, the tools, the
 * messages with older tool results cleared when the transcript outgrows the context window, and the
 * prompt-cache breakpoints. Pure functions: the activity in model.ts does the I/O.
 */
export const MAX_OUTPUT_TOKENS = 8192;
/** Characters per token assumed before a request of the agent has been measured: few, so the estimate errs high. */
const DEFAULT_TOKENS_PER_CHAR = 1 / 3;
/** A clearing goes down to this share of the budget, so that it happens rarely and the cached prefix lasts. */
const CLEARING_TARGET = 0.6;

export interface StoredMessage {
  seq: number;
  role: 'user' | 'assistant';
  content: Anthropic.MessageParam['content'];
}

export function systemPrompt(agentType: AgentType, context: AgentContext): string {
  const roles: Record<AgentType, string> = {
    worker:
      'You are a coding agent. Make the requested changes in the repository ' +
      'at /workspace using the bash tool and the text editor, keeping the ' +
      'project building and its tests passing.',
    reviewer:
      'You are a code reviewer. Read the repository at /workspace with the ' +
      'text editor (view) and search_files, and report problems and ' +
      'suggestions. You cannot change files.',
    tester:
      "You are a test agent. Run the project's tests with run_tests, read the " +
      'code with the text editor (view) and search_files, and report what ' +
      'fails and why. You cannot change files.',
  };
  return [
    roles[agentType],
    `Repository: ${context.repository} (branch ${context.branch}). The sandbox has no network access.`,
    context.skills?.length ? `Skills: ${context.skills.join(', ')}.` : '',
    context.instructions ? `Instructions:\n${context.instructions}` : '',
    'When the work is done, answer with a short summary and no tool call.',
  ]
    .filter(Boolean)
    .join('\n\n');
}

export function firstPrompt(context: AgentContext): string {
  return ['Work items:', ...context.workItems.map((item, index) => `${index + 1}. ${item}`)].join('\n');
}

/** What the model reads in place of a cleared tool result. */
export function clearedToolResult(label: string, characters: number): string {
  return (
    `[This tool result was cleared to keep the conversation within the ` +
    `context window: ${label}, ${characters} characters. Run the tool again ` +
    `if you need its output.]`
  );
}

/** What the model reads in place of a long argument of an old tool call (a file's content it created, say). */
export const clearedToolInput = (characters: number): string => `[cleared to save context: ${characters} characters]`;
/** Tool-call arguments up to this length stay when their call is cleared: paths, commands, patterns. */
const KEPT_INPUT_CHARACTERS = 500;

export class ContextOverflowError extends Error {
  override readonly name = 'ContextOverflowError';
}

export interface ContextBudget {
  /** Prompt tokens a request may hold: the context window less the reply's room. */
  budgetTokens: number;
  /** Tokens per character measured on the agent's previous request (0: not measured yet). */
  tokensPerChar: number;
  /** Messages up to this seq are already sent with their tool results cleared. */
  clearedThrough: number;
}

export interface FittedTranscript {
  messages: Anthropic.MessageParam[];
  clearedThrough: number;
  /** Tool results sent cleared in this request. */
  clearedToolResults: number;
  /** Whether this request cleared results that earlier requests still sent in full. */
  clearedNow: boolean;
  estimatedTokens: number;
  characters: number;
}

const isToolResult = (block: unknown): block is Anthropic.ToolResultBlockParam =>
  (block as { type?: string }).type === 'tool_result';
const isToolUse = (block: unknown): block is Anthropic.ToolUseBlockParam =>
  (block as { type?: string }).type === 'tool_use';
const blocksOf = (content: Anthropic.MessageParam['content']): unknown[] =>
  typeof content === 'string' ? [] : content;

/** A tool call whose long string arguments are replaced by a note of their length. */
function withShortInput(use: Anthropic.ToolUseBlockParam): Anthropic.ToolUseBlockParam {
  if (typeof use.input !== 'object' || use.input === null) return use;
  const input = Object.fromEntries(
    Object.entries(use.input as Record<string, unknown>).map(([key, value]) => [
      key,
      typeof value === 'string' && value.length > KEPT_INPUT_CHARACTERS ? clearedToolInput(value.length) : value,
    ]),
  );
  return { ...use, input };
}

/**
 * The messages of the next request, fitted to the context window: when the estimate (the request's
 * characters times the agent's measured tokens per character) goes past the budget, older tool
 * results (and the long arguments of older tool calls) are cleared oldest first, down to
 * CLEARING_TARGET of it. The latest reply and the results it asked for are never cleared. Clearing
 * is sticky: what was cleared stays cleared, so the cached prefix of later requests is the same.
 * The stored transcript itself is never changed.
 */
export function fitToContext(
  prefix: { system: string; tools: AgentTool[] },
  transcript: StoredMessage[],
  budget: ContextBudget,
): FittedTranscript {
  const labels = new Map<string, string>();
  for (const message of transcript) {
    for (const block of blocksOf(message.content)) {
      const use = block as { type?: string; id?: string; name?: string; input?: unknown };
      if (use.type === 'tool_use' && use.id && use.name) labels.set(use.id, toolCallLabel(use.name, use.input));
    }
  }
  const clear = (message: StoredMessage): StoredMessage => ({
    ...message,
    content: blocksOf(message.content).map((block) => {
      if (isToolUse(block)) return withShortInput(block);
      if (!isToolResult(block)) return block;
      const characters = JSON.stringify(block.content ?? '').length;
      return { ...block, content: clearedToolResult(labels.get(block.tool_use_id) ?? 'a tool call', characters) };
    }) as Anthropic.MessageParam['content'],
  });
  const clearable = (message: StoredMessage): boolean =>
    blocksOf(message.content).some((block) => isToolResult(block) || isToolUse(block));
  // The latest reply and its results: what the model is answering now.
  const kept = new Set(transcript.slice(-2).map((message) => message.seq));
  let clearedThrough = budget.clearedThrough;
  const messages = transcript.map((message) =>
    message.seq <= clearedThrough && !kept.has(message.seq) && clearable(message) ? clear(message) : message,
  );
  const prefixCharacters = JSON.stringify(prefix).length;
  const charactersOf = (list: StoredMessage[]): number =>
    prefixCharacters + JSON.stringify(list.map(({ role, content }) => ({ role, content }))).length;
  const perChar = budget.tokensPerChar > 0 ? budget.tokensPerChar : DEFAULT_TOKENS_PER_CHAR;
  const estimate = (characters: number): number => Math.ceil(characters * perChar);

  let characters = charactersOf(messages);
  let clearedNow = false;
  if (estimate(characters) > budget.budgetTokens) {
    const target = budget.budgetTokens * CLEARING_TARGET;
    for (const [index, message] of messages.entries()) {
      if (estimate(characters) <= target) break;
      if (message.seq <= clearedThrough || kept.has(message.seq) || !clearable(message)) continue;
      const cleared = clear(message);
      characters += JSON.stringify(cleared.content).length - JSON.stringify(message.content).length;
      messages[index] = cleared;
      clearedThrough = message.seq;
      clearedNow = true;
    }
    if (estimate(characters) > budget.budgetTokens) {
      throw new ContextOverflowError(
        `the conversation needs about ${estimate(characters)} tokens even with ` +
          `its older tool calls and results cleared, more than the ` +
          `${budget.budgetTokens} the context window leaves`,
      );
    }
  }
  const clearedToolResults = messages
    .filter((message) => message.seq <= clearedThrough && !kept.has(message.seq))
    .reduce((count, message) => count + blocksOf(message.content).filter(isToolResult).length, 0);
  return {
    messages: messages.map(({ role, content }) => ({ role, content })),
    clearedThrough,
    clearedToolResults,
    clearedNow,
    estimatedTokens: estimate(characters),
    characters,
  };
}

const EPHEMERAL: Anthropic.CacheControlEphemeral = { type: 'ephemeral' };

/** The message with a cache breakpoint on its last block. */
function markLastBlock(message: Anthropic.MessageParam): Anthropic.MessageParam {
  const blocks: Anthropic.ContentBlockParam[] =
    typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : [...message.content];
  const lastBlock = blocks.at(-1);
  if (lastBlock === undefined) return message;
  blocks[blocks.length - 1] = { ...lastBlock, cache_control: EPHEMERAL } as Anthropic.ContentBlockParam;
  return { ...message, content: blocks } as Anthropic.MessageParam;
}

/**
 * Prompt-cache breakpoints (four, the API's limit): the tools, the system prompt, the message the
 * previous request ended with (so this request reads that whole prefix from the cache) and the
 * latest message (so the next request can read this one's).
 */
export function withCacheBreakpoints(tools: AgentTool[], system: string, messages: Anthropic.MessageParam[]) {
  const lastTool = tools.at(-1);
  const cachedTools = lastTool ? [...tools.slice(0, -1), { ...lastTool, cache_control: EPHEMERAL }] : tools;
  const marked = new Set([messages.length - 1, messages.length - 3].filter((index) => index >= 0));
  return {
    tools: cachedTools,
    system: [{ type: 'text' as const, text: system, cache_control: EPHEMERAL }],
    messages: messages.map((message, index) => (marked.has(index) ? markLastBlock(message) : message)),
  };
}
