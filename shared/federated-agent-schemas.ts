import { z } from 'zod';
import {
  AgentContextSchema,
  AgentMessageRequestSchema,
  AgentOptionsSchema,
  AgentResourcesSchema,
  ApprovalDecisionRequestSchema,
  Identifier,
} from './agent-schemas';
import {
  AGENT_STATES,
  AGENT_TYPES,
  DELIVERY_FAILURES,
  PRIORITY_MAX,
  PRIORITY_MIN,
  RESULT_BUNDLE_STATUSES,
} from './vocabulary';

/**
 * The wire shapes of agents run across federation (FED-010, ../shared/seeds): the payloads of the
 * agent.spawn, agent.status and agent.kill COMMANDs, their results in the signed replies, and the
 * agent.lifecycle EVENT a spoke pushes to the hub. Fields beyond the seed are optional additions,
 * never renames (docs/federation-protocol.md). The hub's REST body is the spawn payload plus the
 * connection to run it through. Workflows use only the inferred types (below).
 */
const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

export const FederatedAgentOptionsSchema = z.strictObject({
  /** Milliseconds the whole run may take, as in FED-010 (e.g. 3600000); both sides enforce it. */
  timeout: z.number().int().min(1000).max(MAX_TIMEOUT_MS).optional(),
  /** Retries of a failed model or tool call on the spoke, and of delivering the spawn on the hub. */
  maxRetries: z.number().int().min(0).max(20).optional(),
  // Additions to the seed:
  model: z.string().min(1).max(200).optional(),
  maxTurns: z.number().int().min(1).max(1000).optional(),
  tokenBudget: z.number().int().min(1).max(100_000_000).optional(),
  /** USD the run may spend, by the spoke's price table (refused when its model has no price there). */
  costBudgetUsd: z.number().positive().max(1_000_000).optional(),
  /** Seconds one bash command may take on the spoke. */
  commandTimeout: z.number().int().min(1).max(3600).optional(),
  resources: AgentResourcesSchema.optional(),
  /** Tool calls that wait for a decision, which the hub sends with agent.approval (an addition, issue 24). */
  approvals: AgentOptionsSchema.shape.approvals,
  waitsCountTowardTimeout: z.boolean().optional(),
});

export const SpawnCommandPayloadSchema = z.strictObject({
  taskId: Identifier,
  agentType: z.enum(AGENT_TYPES),
  context: AgentContextSchema,
  /** Addition: admission order on the spoke when its hosts are full (1 to 10, default 5). */
  priority: z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX).optional(),
  options: FederatedAgentOptionsSchema.optional(),
});

export const FederatedSpawnRequestSchema = z.strictObject({
  connectionId: z.uuid(),
  ...SpawnCommandPayloadSchema.shape,
  /** The hub pushes the result, with its own credentials, once the agent completed (never sent to the spoke). */
  delivery: AgentOptionsSchema.shape.delivery,
});

export const AgentIdSchema = z.string().regex(/^agent-[0-9a-f-]{36}$/, 'is not an agent id');
/** agent.status, agent.kill and agent.result. */
export const AgentRefPayloadSchema = z.strictObject({ agentId: AgentIdSchema });
/** agent.result (an addition): a piece of the agent's result bundle, from `offset`. */
export const ResultPiecePayloadSchema = z.strictObject({
  agentId: AgentIdSchema,
  offset: z
    .number()
    .int()
    .min(0)
    .max(1024 * 1024 * 1024)
    .default(0),
});
/** What agent.result answers: the bundle's commit and size, and up to 1 MiB of it from `offset`, in base64. */
export const ResultPieceSchema = z.object({
  agentId: AgentIdSchema,
  commitSha: z.string().regex(/^[0-9a-f]{40}$/),
  sizeBytes: z.number().int().min(0),
  offset: z.number().int().min(0),
  data: z.base64(),
});
/** agent.message (an addition): an operator's message for the agent's next turn. */
export const MessagePayloadSchema = z.strictObject({
  agentId: AgentIdSchema,
  text: AgentMessageRequestSchema.shape.text,
});
/** A tool call's id as the model wrote it (toolu_…). */
export const ToolCallIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be a tool call id');
/** agent.approval (an addition): the decision on the tool call the agent waits on. */
export const ApprovalPayloadSchema = z.strictObject({
  agentId: AgentIdSchema,
  toolCallId: ToolCallIdSchema,
  ...ApprovalDecisionRequestSchema.shape,
});
/** The tool call an agent waits on (state input_required), as its status and its hub's mirror show it. */
export const PendingApprovalSchema = z.object({
  toolCallId: z.string(),
  tool: z.string(),
  label: z.string(),
  rule: z.number().int(),
  requestedAt: z.string(),
  expiresAt: z.string().nullable(),
  onTimeout: z.enum(['approve', 'deny']),
});

/**
 * agent.kill names the agent, or (an addition) the messageId of the spawn that would have created it:
 * a hub that never got the spawn's reply settles with it whether the spawn was taken.
 */
export const KillPayloadSchema = z.union([AgentRefPayloadSchema, z.strictObject({ spawnMessageId: z.uuid() })]);
/** The spawn a kill by spawnMessageId found: its agent (killing, or already final), or none, and none will ever run. */
export const KillBySpawnResultSchema = z.object({
  spawnMessageId: z.uuid(),
  agentId: AgentIdSchema.nullable(),
  state: z.string(),
});

/** Token usage as an agent's status reports it; the cache fields are additions (absent from older peers). */
export const TokenUsageSchema = z.object({
  inputTokens: z.number().int().min(0),
  outputTokens: z.number().int().min(0),
  cacheCreationInputTokens: z.number().int().min(0).optional(),
  cacheReadInputTokens: z.number().int().min(0).optional(),
});

export const RemoteProgressSchema = z.object({
  turn: z.number().int().min(0),
  lastTool: z.string().nullable(),
  usage: TokenUsageSchema,
  /** Addition: the run's estimated cost in USD on the spoke (null: its model has no price there). */
  costUsd: z.number().min(0).nullable().optional(),
  /** Addition: the tool call the agent waits on while it is input_required. */
  pendingApproval: PendingApprovalSchema.nullable().optional(),
  updatedAt: z.iso.datetime({ offset: true }),
});

export const AgentResultPayloadSchema = z.object({
  branch: z.string().nullable(),
  commitSha: z.string().nullable(),
  diff: z.string(),
  testOutput: z.string().nullable(),
  testExitCode: z.number().int().nullable(),
  summary: z.string().nullable(),
  /** Addition: the run's estimated cost in USD (null: its model has no price). */
  costUsd: z.number().min(0).nullable().optional(),
  /** Addition: whether GET /agents/{agentId}/result.bundle serves the branch (null: no bundle, no changes). */
  bundle: z.enum(RESULT_BUNDLE_STATUSES).nullable().optional(),
  /** Addition: where options.delivery pushed the result, or why it did not (absent: no push was asked). */
  delivery: z
    .union([
      z.object({ pushed: z.literal(true), remote: z.string(), branch: z.string(), commit: z.string() }),
      z.object({
        pushed: z.literal(false),
        remote: z.string(),
        branch: z.string(),
        commit: z.string(),
        failure: z.enum(DELIVERY_FAILURES),
        reason: z.string(),
      }),
    ])
    .nullable()
    .optional(),
});

export const StatusReplyResultSchema = z.object({
  agentId: AgentIdSchema,
  taskId: z.string(),
  status: z.enum(AGENT_STATES),
  spawnedAt: z.iso.datetime({ offset: true }),
  startedAt: z.iso.datetime({ offset: true }).nullable(),
  progress: RemoteProgressSchema,
  // Additions to the seed:
  agentType: z.enum(AGENT_TYPES).optional(),
  error: z.string().nullable().optional(),
  finishedAt: z.iso.datetime({ offset: true }).nullable().optional(),
  /** Present once the agent is terminal. */
  result: AgentResultPayloadSchema.nullable().optional(),
});

/** The payload of an agent.lifecycle EVENT: one state change of an agent a hub spawned here. */
export const AgentLifecycleEventSchema = z.strictObject({
  agentId: AgentIdSchema,
  /** The messageId of the agent.spawn COMMAND that created the agent: how the hub finds its own record. */
  spawnMessageId: z.uuid(),
  /** 1, 2, 3, ... per agent; the hub applies only what is newer than what it has. */
  sequence: z.number().int().min(1),
  state: z.enum(AGENT_STATES),
  startedAt: z.iso.datetime({ offset: true }).nullable(),
  progress: RemoteProgressSchema,
  error: z.string().nullable(),
  occurredAt: z.iso.datetime({ offset: true }),
});

/** The spoke's local options for a federated spawn: milliseconds become seconds, omitted values the local defaults. */
export function localOptionsFrom(
  options: z.infer<typeof FederatedAgentOptionsSchema> | undefined,
): z.infer<typeof AgentOptionsSchema> {
  const { timeout, ...rest } = options ?? {};
  return AgentOptionsSchema.parse({
    ...rest,
    ...(timeout !== undefined ? { timeout: Math.ceil(timeout / 1000) } : {}),
  });
}

export type SpawnCommandPayload = z.infer<typeof SpawnCommandPayloadSchema>;
export type FederatedAgentOptions = z.infer<typeof FederatedAgentOptionsSchema>;
export type RemoteProgress = z.infer<typeof RemoteProgressSchema>;
export type AgentLifecycleEvent = z.infer<typeof AgentLifecycleEventSchema>;
export type StatusReplyResult = z.infer<typeof StatusReplyResultSchema>;
export type AgentResultPayload = z.infer<typeof AgentResultPayloadSchema>;
export type ResultPiece = z.infer<typeof ResultPieceSchema>;
