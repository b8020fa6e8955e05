import Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { costOf, DEFAULT_CONTEXT_WINDOW, priceOf, type ModelPriceTable } from '../config/model-prices';
import type { WorkerMetrics } from '../platform/metrics';
import { Prisma, type PrismaClient } from '../prisma/client';
import { roundUsd, type AgentType, type TokenUsage } from '../shared/vocabulary';
import { type AgentContext } from '../shared/agent-schemas';
import type { ModelProgress } from '../shared/agent-events';
import { toolCallLabel, toolsFor } from '../sandbox-runtime/agent-tools';
import { stoppedByKill } from './sandbox';
import { untilStored, whileHeartbeating } from './heartbeat';
import type { InFlightModelCalls } from '../model-client/calls-in-flight';
import { TranscriptCache } from '../model-client/transcript-cache';
import {
  conversationAt,
  replySeq,
  TranscriptGap,
  type Conversation,
  type OperatorMessage,
} from '../model-client/conversation';
import { approvalRuleFor } from '../sandbox-runtime/approval-rules';
import type { ApprovalRule } from '../shared/agent-schemas';
import {
  ContextOverflowError,
  fitToContext,
  MAX_OUTPUT_TOKENS,
  systemPrompt,
  withCacheBreakpoints,
  type FittedTranscript,
  type StoredMessage,
} from '../model-client/request';
import { appendEventStatements } from '../domain/agents/agent-events';
import { AGENT_PROGRESS_CHANNEL } from '../domain/agents/agent-event-feed';
import { AGENT_RUN_FAILURES } from '../workflows/agent-run/contract';

/**
 * One model call per activity, streamed. The transcript lives in PostgreSQL (AgentMessage), so the
 * workflow history carries only ids and small summaries. The SDK's own retries are off: Temporal's
 * retry policy retries 429/529/5xx and errors in the middle of a stream visibly, and
 * 400/401/403/404 fail at once as non-retryable.
 */
export const MODEL_REJECTED = AGENT_RUN_FAILURES.modelRequestRejected;
export const MODEL_UNAVAILABLE = 'ModelUnavailable';
export const MODEL_NOT_CONFIGURED = AGENT_RUN_FAILURES.modelNotConfigured;
export const CONTEXT_WINDOW_EXCEEDED = AGENT_RUN_FAILURES.contextWindowExceeded;

const NON_RETRYABLE_STATUSES = new Set([400, 401, 403, 404, 413, 422]);
/** How often what the model writes is published to the status and the event stream while it streams. */
const PROGRESS_INTERVAL_MS = 1000;
/** Requests the API still finds too long after the estimate: re-fitted with its own count, this many times. */
const TOO_LONG_REFITS = 3;

export interface ModelTurn {
  stopReason: string | null;
  /** label: the tool and its main argument ("bash `npm test`"), for the Web UI; absent in older histories. */
  toolCalls: Array<{ id: string; name: string; label?: string; approvalRule?: number }>;
  usage: TokenUsage;
  /** The first characters of the model's text, for the status and the Web UI. */
  text: string;
  /** This turn's estimated cost in USD; null when the model has no price (absent in older histories). */
  costUsd?: number | null;
  /** Set when this turn's request cleared older tool results to fit the context window. */
  contextCleared?: { clearedToolResults: number };
}

export interface ModelDeps {
  prisma: PrismaClient;
  /** Null when no API key is configured: every call then fails with a clear non-retryable error. */
  anthropic: Anthropic | null;
  metrics: WorkerMetrics;
  /** Prices and context windows per model (MODEL_PRICES). */
  modelPrices: ModelPriceTable;
  /** The calls in flight in this process: a kill aborts its agent's. */
  modelCalls: InFlightModelCalls;
}

/** SDK message blocks are plain JSON data; Prisma's Json input type just cannot see that. */
const asJson = (value: unknown): Prisma.InputJsonValue => value as Prisma.InputJsonValue;

const storedMessageOf = (row: { seq: number; role: string; content: Prisma.JsonValue }): StoredMessage => ({
  seq: row.seq,
  role: row.role as StoredMessage['role'],
  content: row.content as unknown as StoredMessage['content'],
});

function textOf(content: Anthropic.ContentBlock[]): string {
  return content
    .filter((block): block is Anthropic.TextBlock => block.type === 'text')
    .map((block) => block.text)
    .join('\n')
    .slice(0, 1000);
}

const statusOf = (error: unknown): number | undefined =>
  error instanceof Anthropic.APIError ? (error.status as number | undefined) : undefined;

function toFailure(error: unknown): ApplicationFailure {
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (status !== undefined && NON_RETRYABLE_STATUSES.has(status)) {
    return ApplicationFailure.nonRetryable(`model request rejected with ${status}: ${message}`, MODEL_REJECTED);
  }
  return ApplicationFailure.retryable(
    `model unavailable: ${status !== undefined ? `${status}: ` : ''}${message}`,
    MODEL_UNAVAILABLE,
  );
}

/**
 * What the API said when it refused a prompt as too long ("prompt is too long: 210000 tokens > 200000 maximum"), else
 * null; 0 where it did not say.
 */
function tooLong(error: unknown): { tokens: number; maximum: number } | null {
  if (statusOf(error) !== 400 || !(error instanceof Error) || !/prompt is too long/i.test(error.message)) return null;
  const [, tokens = '0', maximum = '0'] = /(\d+) tokens > (\d+)/.exec(error.message) ?? [];
  return { tokens: Number(tokens), maximum: Number(maximum) };
}

/** What the model writes as it streams: the text so far and the tool whose input it is writing. */
class StreamedProgress {
  private text = '';
  private tool: string | null = null;
  private toolInputCharacters = 0;
  changed = false;

  constructor(private readonly turn: number) {}

  see(event: Anthropic.MessageStreamEvent): void {
    if (event.type === 'content_block_start' && event.content_block.type === 'tool_use') {
      this.tool = event.content_block.name;
      this.toolInputCharacters = 0;
    } else if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') {
      this.text += event.delta.text;
    } else if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') {
      this.toolInputCharacters += event.delta.partial_json.length;
    } else return;
    this.changed = true;
  }

  snapshot(): ModelProgress {
    this.changed = false;
    const text = this.text.length > 1000 ? `…${this.text.slice(-1000)}` : this.text;
    return {
      turn: this.turn + 1,
      text,
      textLength: this.text.length,
      tool: this.tool,
      toolInputCharacters: this.toolInputCharacters,
      at: new Date().toISOString(),
    };
  }
}

export function createModelActivities({ prisma, anthropic, metrics, modelPrices, modelCalls }: ModelDeps) {
  const transcripts = new TranscriptCache();
  /**
   * Publishes what the model writes, at most once a second and only when it changed: the agent's
   * row (the status) and a notification that wakes its event streams. Best effort: a write that fails only
   * leaves the progress older. `stop` waits for the write in flight, so none lands after the turn.
   */
  function publishProgress(agentId: string, progress: StreamedProgress): { stop: () => Promise<void> } {
    const { log } = Context.current();
    let writing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      if (!progress.changed) return;
      const snapshot = progress.snapshot();
      writing = writing
        .then(async () => {
          // The row holds the latest progress; the notification wakes the agent's open event streams.
          await prisma.$transaction([
            prisma.agent.update({ where: { id: agentId }, data: { modelProgress: asJson(snapshot) } }),
            prisma.$executeRaw`SELECT pg_notify(${AGENT_PROGRESS_CHANNEL}, ${agentId})`,
          ]);
        })
        .catch((error: unknown) => {
          log.warn('model progress not published', {
            agentId,
            error: error instanceof Error ? error.message : String(error),
          });
        });
    }, PROGRESS_INTERVAL_MS);
    return {
      stop: async () => {
        clearInterval(timer);
        await writing;
      },
    };
  }

  /**
   * Streams one request; heartbeats with every event, so a long generation is neither cut by a timeout nor taken for a
   * dead worker.
   */
  async function streamReply(
    client: Anthropic,
    body: Anthropic.MessageStreamParams,
    signal: AbortSignal,
    progress: StreamedProgress,
  ): Promise<Anthropic.Message> {
    const context = Context.current();
    const stream = client.messages.stream(body, { signal });
    stream.on('streamEvent', (event) => {
      context.heartbeat();
      progress.see(event);
    });
    return await stream.finalMessage();
  }

  return {
    /** messages: what operators said since the last call (they join this turn's request, once). */
    async callModel(input: { agentId: string; turn: number; messages?: OperatorMessage[] }): Promise<ModelTurn> {
      const { agentId, turn } = input;
      // The agent, what was stored since this worker's cached transcript (usually nothing) and the tool calls the
      // model asked for last turn, read side by side.
      const cached = transcripts.prefix(agentId, replySeq(turn));
      const [agent, stored, previousCalls] = await Promise.all([
        prisma.agent.findUniqueOrThrow({ where: { id: agentId } }),
        prisma.agentMessage.findMany({
          where: { agentId, seq: { gt: cached.at(-1)?.seq ?? -1, lte: replySeq(turn) } },
          orderBy: { seq: 'asc' },
        }),
        turn > 0 ? prisma.toolCall.findMany({ where: { agentId, turn: turn - 1 } }) : [],
      ]);
      const agentType = agent.agentType as AgentType;
      const context = agent.context as unknown as AgentContext;
      const options = agent.options as { model: string; approvals?: ApprovalRule[] };

      let conversation: Conversation;
      try {
        const known = [...cached, ...stored.map(storedMessageOf)];
        conversation = conversationAt(turn, context, known, previousCalls, input.messages);
      } catch (error) {
        if (error instanceof TranscriptGap) throw ApplicationFailure.nonRetryable(error.message, MODEL_REJECTED);
        throw error;
      }
      // A retry after the reply was stored (the previous attempt's completion was lost) must not call the model again.
      if (conversation.storedReply)
        return summarize(
          conversation.storedReply.content as Anthropic.ContentBlock[],
          null,
          { inputTokens: 0, outputTokens: 0 },
          options.approvals,
        );

      if (!anthropic)
        throw ApplicationFailure.nonRetryable('ANTHROPIC_API_KEY is not set on the worker', MODEL_NOT_CONFIGURED);
      const transcript = conversation.messages;

      const price = priceOf(modelPrices, options.model);
      const system = systemPrompt(agentType, context);
      const tools = toolsFor(agentType);
      let budgetTokens = (price?.contextWindow ?? DEFAULT_CONTEXT_WINDOW) - MAX_OUTPUT_TOKENS;
      let tokensPerChar = agent.promptChars > 0 ? agent.promptTokens / agent.promptChars : 0;
      const fit = (): FittedTranscript => {
        try {
          return fitToContext({ system, tools }, transcript, {
            budgetTokens,
            tokensPerChar,
            clearedThrough: agent.contextClearedThrough,
          });
        } catch (error) {
          if (error instanceof ContextOverflowError)
            throw ApplicationFailure.nonRetryable(error.message, CONTEXT_WINDOW_EXCEEDED);
          throw error;
        }
      };

      let fitted = fit();

      const kill = modelCalls.begin(agentId);
      // A kill reaches the stream at once (see InFlightModelCalls); Temporal's cancellation too, at the next heartbeat.
      const signal = AbortSignal.any([Context.current().cancellationSignal, kill.signal]);
      const progress = new StreamedProgress(turn);
      const publisher = publishProgress(agentId, progress);
      const timer = metrics.modelRequests.startTimer({ model: options.model });
      let reply: Anthropic.Message;
      try {
        for (let refits = 0; ; refits++) {
          try {
            const cached = withCacheBreakpoints(tools, system, fitted.messages);
            reply = await whileHeartbeating(() =>
              streamReply(
                anthropic,
                { model: options.model, max_tokens: MAX_OUTPUT_TOKENS, ...cached },
                signal,
                progress,
              ),
            );
            break;
          } catch (error) {
            // The estimate was low (or the window smaller than configured): the API's own numbers calibrate the next
            // fit.
            const refused = tooLong(error);
            if (refused === null || refits >= TOO_LONG_REFITS) throw error;
            tokensPerChar =
              refused.tokens > 0 ? refused.tokens / fitted.characters : Math.max(tokensPerChar, 1 / 3) * 1.5;
            if (refused.maximum > MAX_OUTPUT_TOKENS)
              budgetTokens = Math.min(budgetTokens, refused.maximum - MAX_OUTPUT_TOKENS);
            fitted = fit();
          }
        }
      } catch (error) {
        if (kill.signal.aborted) {
          timer({ outcome: 'killed' });
          throw stoppedByKill('the model call was stopped: the agent was killed', MODEL_UNAVAILABLE);
        }
        const failure = error instanceof ApplicationFailure ? error : toFailure(error);
        timer({ outcome: failure.nonRetryable ? 'rejected' : 'retryable' });
        throw failure;
      } finally {
        modelCalls.end(agentId, kill);
        await publisher.stop();
      }
      timer({ outcome: 'ok' });

      const usage: Required<TokenUsage> = {
        inputTokens: reply.usage.input_tokens,
        outputTokens: reply.usage.output_tokens,
        cacheCreationInputTokens: reply.usage.cache_creation_input_tokens ?? 0,
        cacheReadInputTokens: reply.usage.cache_read_input_tokens ?? 0,
      };
      const turnCost = price ? roundUsd(costOf(usage, price)) : null;
      const totalCost = turnCost === null ? agent.costUsd : roundUsd((agent.costUsd ?? 0) + turnCost);
      metrics.modelTokens.inc({ model: options.model, kind: 'input' }, usage.inputTokens);
      metrics.modelTokens.inc({ model: options.model, kind: 'output' }, usage.outputTokens);
      metrics.modelTokens.inc({ model: options.model, kind: 'cache_creation' }, usage.cacheCreationInputTokens);
      metrics.modelTokens.inc({ model: options.model, kind: 'cache_read' }, usage.cacheReadInputTokens);
      if (turnCost !== null) metrics.modelCost.inc({ model: options.model }, turnCost);
      if (fitted.clearedNow) metrics.contextClearings.inc();

      const toolUses = reply.content.filter((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
      const promptTokens = usage.inputTokens + usage.cacheCreationInputTokens + usage.cacheReadInputTokens;
      const replyMessage: StoredMessage = { seq: replySeq(turn), role: 'assistant', content: reply.content };
      // One write per turn: what the request added (the first prompt or the tool results), the reply, the tool calls
      // it asks for, the agent's counters and the turn's events.
      const statements = (): Array<Prisma.PrismaPromise<unknown>> => [
        prisma.agentMessage.createMany({
          data: [...conversation.added, replyMessage].map((message) => ({
            agentId,
            seq: message.seq,
            role: message.role,
            content: asJson(message.content),
          })),
        }),
        ...(conversation.unknownCalls.length > 0
          ? [
              prisma.toolCall.updateMany({
                where: { agentId, id: { in: conversation.unknownCalls } },
                data: { status: 'unknown' },
              }),
            ]
          : []),
        prisma.toolCall.createMany({
          data: toolUses.map((use) => ({
            id: use.id,
            agentId,
            turn,
            name: use.name,
            input: use.input as object,
            status: 'pending',
          })),
          skipDuplicates: true,
        }),
        prisma.agent.update({
          where: { id: agentId },
          data: {
            turn: turn + 1,
            inputTokens: { increment: usage.inputTokens },
            outputTokens: { increment: usage.outputTokens },
            cacheCreationInputTokens: { increment: usage.cacheCreationInputTokens },
            cacheReadInputTokens: { increment: usage.cacheReadInputTokens },
            costUsd: totalCost,
            modelProgress: Prisma.DbNull,
            promptChars: fitted.characters,
            promptTokens,
            contextClearedThrough: fitted.clearedThrough,
            clearedToolResults: fitted.clearedToolResults,
            ...(fitted.clearedNow ? { contextClearings: { increment: 1 }, contextClearedAtTurn: turn + 1 } : {}),
          },
        }),
        ...(fitted.clearedNow
          ? appendEventStatements(prisma, agentId, {
              type: 'context',
              turn: turn + 1,
              clearedToolResults: fitted.clearedToolResults,
              estimatedTokens: fitted.estimatedTokens,
              budgetTokens,
            })
          : []),
        // The operator's messages reached the model with this request: stored with it, told once.
        ...(conversation.added.length > 0 ? (input.messages ?? []) : []).flatMap((message) =>
          appendEventStatements(prisma, agentId, { type: 'message', turn, ...message }),
        ),
        ...appendEventStatements(prisma, agentId, {
          type: 'turn',
          turn: turn + 1,
          ...usage,
          costUsd: turnCost,
          totalCostUsd: totalCost,
          toolCalls: toolUses.map((use) => toolCallLabel(use.name, use.input)),
          text: textOf(reply.content),
        }),
      ];
      // The reply is paid for: its write waits for PostgreSQL rather than have the model called again.
      await untilStored(() => prisma.$transaction(statements()));
      transcripts.keep(agentId, [...transcript, replyMessage]);
      return {
        ...summarize(reply.content, reply.stop_reason, usage, options.approvals),
        costUsd: turnCost,
        ...(fitted.clearedNow ? { contextCleared: { clearedToolResults: fitted.clearedToolResults } } : {}),
      };
    },
  };
}

/** The reply as the workflow sees it; a tool call that an approval rule matches carries the rule's index. */
function summarize(
  content: Anthropic.ContentBlock[],
  stopReason: string | null,
  usage: TokenUsage,
  approvals: ApprovalRule[] | undefined,
): ModelTurn {
  const toolCalls = content
    .filter((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use')
    .map((block) => {
      const rule = approvalRuleFor(approvals, block.name, block.input);
      const call = { id: block.id, name: block.name, label: toolCallLabel(block.name, block.input) };
      return rule === null ? call : { ...call, approvalRule: rule };
    });
  return { stopReason, toolCalls, usage, text: textOf(content) };
}

/** The SDK client for the worker: its retries are off so that Temporal owns them. */
export function createAnthropicClient(apiKey: string | undefined, baseURL: string | undefined): Anthropic | null {
  if (!apiKey) return null;
  return new Anthropic({ apiKey, baseURL: baseURL ?? null, maxRetries: 0, timeout: 10 * 60 * 1000 });
}
