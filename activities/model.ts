import Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WorkerMetrics } from '../platform/metrics';
import type { Prisma, PrismaClient } from '../prisma/client';
import type { AgentContext, AgentType, TokenUsage } from '../shared/agents';
import { toolCallLabel, toolsFor } from './agent-tools';
import { whileHeartbeating } from './heartbeat';
import { appendEventStatements } from '../domain/agents/agent-events';

/**
 * One model call per activity. The transcript lives in PostgreSQL (AgentMessage), so the workflow
 * history carries only ids and small summaries. The SDK's own retries are off: Temporal's retry
 * policy retries 429/529/5xx visibly, and 400/401/403/404 fail at once as non-retryable.
 */
export const MODEL_REJECTED = 'ModelRequestRejected';
export const MODEL_UNAVAILABLE = 'ModelUnavailable';
export const MODEL_NOT_CONFIGURED = 'ModelNotConfigured';

const NON_RETRYABLE_STATUSES = new Set([400, 401, 403, 404, 413, 422]);
const MAX_OUTPUT_TOKENS = 8192;

export const UNKNOWN_TOOL_OUTCOME =
  'The outcome of this tool call is unknown: the worker running it stopped before reporting. It may or may not have taken effect; inspect the workspace before repeating it.';

export interface ModelTurn {
  stopReason: string | null;
  /** label: the tool and its main argument ("run_shell `npm test`"), for the Web UI; absent in older histories. */
  toolCalls: Array<{ id: string; name: string; label?: string }>;
  usage: TokenUsage;
  /** The first characters of the model's text, for the status and the Web UI. */
  text: string;
}

export interface ModelDeps {
  prisma: PrismaClient;
  /** Null when no API key is configured: every call then fails with a clear non-retryable error. */
  anthropic: Anthropic | null;
  metrics: WorkerMetrics;
}

/** SDK message blocks are plain JSON data; Prisma's Json input type just cannot see that. */
const asJson = (value: unknown): Prisma.InputJsonValue => value as Prisma.InputJsonValue;

/** A message with seq 2t+1 is the model's reply in turn t; seq 2t (t > 0) holds the tool results it answers. */
const replySeq = (turn: number): number => 2 * turn + 1;

function systemPrompt(agentType: AgentType, context: AgentContext): string {
  const roles: Record<AgentType, string> = {
    worker: 'You are a coding agent. Make the requested changes in the repository at /workspace using the tools, keeping the project building and its tests passing.',
    reviewer: 'You are a code reviewer. Read the repository at /workspace and report problems and suggestions. You cannot change files.',
    tester: "You are a test agent. Run the project's tests with run_tests, investigate failures and report what fails and why.",
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

function firstPrompt(context: AgentContext): string {
  return ['Work items:', ...context.workItems.map((item, index) => `${index + 1}. ${item}`)].join('\n');
}

function textOf(content: Anthropic.ContentBlock[]): string {
  return content
    .filter((block): block is Anthropic.TextBlock => block.type === 'text')
    .map((block) => block.text)
    .join('\n')
    .slice(0, 1000);
}

function toFailure(error: unknown): ApplicationFailure {
  const status: number | undefined = error instanceof Anthropic.APIError ? (error.status as number | undefined) : undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (status !== undefined && NON_RETRYABLE_STATUSES.has(status)) {
    return ApplicationFailure.nonRetryable(`model request rejected with ${status}: ${message}`, MODEL_REJECTED);
  }
  return ApplicationFailure.retryable(`model unavailable: ${status !== undefined ? `${status}: ` : ''}${message}`, MODEL_UNAVAILABLE);
}

export function createModelActivities({ prisma, anthropic, metrics }: ModelDeps) {
  /** Appends the tool results of turn-1 (idempotent); a call that never finished is reported as unknown. */
  async function ensureToolResults(agentId: string, turn: number): Promise<void> {
    const seq = 2 * turn;
    if (await prisma.agentMessage.findUnique({ where: { agentId_seq: { agentId, seq } } })) return;
    const calls = await prisma.toolCall.findMany({ where: { agentId, turn: turn - 1 } });
    const previous = await prisma.agentMessage.findUniqueOrThrow({ where: { agentId_seq: { agentId, seq: replySeq(turn - 1) } } });
    const order = (previous.content as unknown as Anthropic.ContentBlock[]).filter((block) => block.type === 'tool_use').map((block) => block.id);
    const byId = new Map(calls.map((call) => [call.id, call]));
    const unfinished = calls.filter((call) => call.status !== 'finished').map((call) => call.id);
    if (unfinished.length > 0) await prisma.toolCall.updateMany({ where: { agentId, id: { in: unfinished } }, data: { status: 'unknown' } });
    const content: Anthropic.ToolResultBlockParam[] = order.map((id) => {
      const call = byId.get(id);
      const finished = call?.status === 'finished';
      return { type: 'tool_result', tool_use_id: id, content: finished ? (call.output ?? '') : UNKNOWN_TOOL_OUTCOME, is_error: finished ? call.isError : true };
    });
    await prisma.agentMessage.createMany({ data: [{ agentId, seq, role: 'user', content: asJson(content) }], skipDuplicates: true });
  }

  return {
    async callModel(input: { agentId: string; turn: number }): Promise<ModelTurn> {
      const { agentId, turn } = input;
      const agent = await prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
      const agentType = agent.agentType as AgentType;
      const context = agent.context as unknown as AgentContext;
      const options = agent.options as { model: string };

      // A retry after the reply was stored (the previous attempt's completion was lost) must not call the model again.
      const stored = await prisma.agentMessage.findUnique({ where: { agentId_seq: { agentId, seq: replySeq(turn) } } });
      if (stored) return summarize(stored.content as unknown as Anthropic.ContentBlock[], null, { inputTokens: 0, outputTokens: 0 });

      if (!anthropic) throw ApplicationFailure.nonRetryable('ANTHROPIC_API_KEY is not set on the worker', MODEL_NOT_CONFIGURED);
      await prisma.agentMessage.createMany({ data: [{ agentId, seq: 0, role: 'user', content: firstPrompt(context) }], skipDuplicates: true });
      if (turn > 0) await ensureToolResults(agentId, turn);
      const transcript = await prisma.agentMessage.findMany({ where: { agentId, seq: { lte: 2 * turn } }, orderBy: { seq: 'asc' } });

      let reply: Anthropic.Message;
      const timer = metrics.modelRequests.startTimer({ model: options.model });
      try {
        // Heartbeats while the model answers: a kill reaches the request (its signal) and a dead worker shows within the heartbeat timeout.
        reply = await whileHeartbeating(() =>
          anthropic.messages.create(
            {
              model: options.model,
              max_tokens: MAX_OUTPUT_TOKENS,
              system: systemPrompt(agentType, context),
              tools: toolsFor(agentType),
              messages: transcript.map((message) => ({ role: message.role as 'user' | 'assistant', content: message.content as unknown as Anthropic.MessageParam['content'] })),
            },
            { signal: Context.current().cancellationSignal },
          ),
        );
      } catch (error) {
        const failure = toFailure(error);
        timer({ outcome: failure.nonRetryable ? 'rejected' : 'retryable' });
        throw failure;
      }
      timer({ outcome: 'ok' });
      metrics.modelTokens.inc({ model: options.model, kind: 'input' }, reply.usage.input_tokens);
      metrics.modelTokens.inc({ model: options.model, kind: 'output' }, reply.usage.output_tokens);

      const usage = { inputTokens: reply.usage.input_tokens, outputTokens: reply.usage.output_tokens };
      const toolUses = reply.content.filter((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
      await prisma.$transaction([
        prisma.agentMessage.create({ data: { agentId, seq: replySeq(turn), role: 'assistant', content: asJson(reply.content) } }),
        prisma.toolCall.createMany({
          data: toolUses.map((use) => ({ id: use.id, agentId, turn, name: use.name, input: use.input as object, status: 'pending' })),
          skipDuplicates: true,
        }),
        prisma.agent.update({
          where: { id: agentId },
          data: { turn: turn + 1, inputTokens: { increment: usage.inputTokens }, outputTokens: { increment: usage.outputTokens } },
        }),
        ...appendEventStatements(prisma, agentId, {
          type: 'turn',
          turn: turn + 1,
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
          toolCalls: toolUses.map((use) => toolCallLabel(use.name, use.input)),
          text: textOf(reply.content),
        }),
      ]);
      return summarize(reply.content, reply.stop_reason, usage);
    },
  };
}

function summarize(content: Anthropic.ContentBlock[], stopReason: string | null, usage: TokenUsage): ModelTurn {
  const toolCalls = content.filter((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use').map((block) => ({ id: block.id, name: block.name, label: toolCallLabel(block.name, block.input) }));
  return { stopReason, toolCalls, usage, text: textOf(content) };
}

/** The SDK client for the worker: its retries are off so that Temporal owns them. */
export function createAnthropicClient(apiKey: string | undefined, baseURL: string | undefined): Anthropic | null {
  if (!apiKey) return null;
  return new Anthropic({ apiKey, baseURL: baseURL ?? null, maxRetries: 0, timeout: 10 * 60 * 1000 });
}
