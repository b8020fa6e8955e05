import { z } from 'zod';
import { AGENT_TYPES, DEFAULT_PRIORITY, PRIORITY_MAX, PRIORITY_MIN } from './vocabulary';

/**
 * Request schemas for agents: the API validates with them and generates OpenAPI from them, and the
 * workflows use only their inferred types (below), so zod never enters the workflow bundle.
 */
export const Identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be 1-128 letters, digits, dots, dashes or underscores');

/** A branch name git accepts, in plain characters: nothing a shell, a ref expression or an option could read. */
const BranchName = z
  .string()
  .regex(/^[A-Za-z0-9._/-]{1,255}$/, 'must be a git branch name')
  .refine(
    (name) =>
      !name.includes('..') &&
      !name.startsWith('-') &&
      !name.split('/').some((part) => part === '' || part.startsWith('.') || part.endsWith('.lock')) &&
      !name.endsWith('.'),
    'must be a git branch name',
  );

export const AgentContextSchema = z.strictObject({
  /** A local path on the worker host, or a git URL. */
  repository: z.string().min(1).max(2048),
  branch: BranchName,
  workItems: z.array(z.string().min(1).max(10_000)).max(100),
  skills: z.array(z.string().min(1).max(200)).max(50).optional(),
  instructions: z.string().max(50_000).optional(),
});

export const AgentResourcesSchema = z.strictObject({
  memoryMb: z.number().int().min(64).max(8192).optional(),
  cpus: z.number().min(0.1).max(4).optional(),
  pids: z.number().int().min(16).max(4096).optional(),
  /** The workspace's disk quota (default 1024), at most the instance's WORKSPACE_MAX_MB. */
  diskMb: z.number().int().min(16).max(65536).optional(),
});

/** A regular expression an operator writes: bounded, and compiled here so a bad one is a 400, not a worker error. */
const Pattern = z
  .string()
  .min(1)
  .max(500)
  .refine((source) => {
    try {
      new RegExp(source);
      return true;
    } catch {
      return false;
    }
  }, 'must be a valid regular expression');

/**
 * A tool call that waits for an operator: a tool (`bash`, `editor`, `search_files`, `run_tests` or `*`) and a pattern
 * its subject must match (a bash command; an editor call's command and path, as in `create src/a.ts`).
 */
export const ApprovalRuleSchema = z.strictObject({
  tool: z.enum(['bash', 'editor', 'search_files', 'run_tests', '*']),
  match: Pattern.optional(),
  /** Seconds the call waits for a decision before onTimeout applies (default: until the run's own end). */
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 24 * 3600)
    .optional(),
  onTimeout: z.enum(['deny', 'approve']).default('deny'),
});

export const AgentOptionsSchema = z.strictObject({
  /** Seconds the whole run may take; a workflow timer enforces it. */
  timeout: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .default(3600),
  /** Retries of a failed model or tool call (on top of the first attempt). */
  maxRetries: z.number().int().min(0).max(20).default(3),
  model: z.string().min(1).max(200).default('claude-sonnet-5-5'),
  maxTurns: z.number().int().min(1).max(1000).default(50),
  /** Seconds one bash command (or test run) may take before it is stopped (exit code 124). */
  commandTimeout: z.number().int().min(1).max(3600).default(300),
  /** Tokens the run may spend: input, output, and prompt-cache writes and reads. */
  tokenBudget: z.number().int().min(1).max(100_000_000).default(2_000_000),
  /** US dollars the run may spend (estimated from the worker's price table); past it the run stops as failed. */
  costBudgetUsd: z.number().positive().max(1_000_000).optional(),
  resources: AgentResourcesSchema.default({}),
  /** Tool calls that wait for an operator's decision before they run (the sandbox is paused meanwhile). */
  approvals: z.array(ApprovalRuleSchema).max(20).optional(),
  /** Whether time spent waiting for an approval or paused counts toward `timeout` (default: the clock stops). */
  waitsCountTowardTimeout: z.boolean().default(false),
  /** Where the result goes once the run has a commit (absent: it stays on the workspace's host and in its bundle). */
  delivery: z
    .strictObject({
      /** Push the result branch with the credentials of the worker's host (never seen by the sandbox). */
      push: z.boolean(),
      /** The repository to push to (default: the task's), under the same repository policy as clones. */
      remote: z.string().min(1).max(2048).optional(),
      /** The branch to push (default: agent/<agentId>); an existing branch moves only forward. */
      branch: BranchName.optional(),
    })
    .optional(),
});

export const SpawnAgentRequestSchema = z.strictObject({
  taskId: Identifier,
  agentType: z.enum(AGENT_TYPES),
  context: AgentContextSchema,
  /** Admission order when hosts are full: higher first, then first come, first served. */
  priority: z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX).default(DEFAULT_PRIORITY),
  options: AgentOptionsSchema.default(AgentOptionsSchema.parse({})),
});

/** What an operator says to a running agent (POST /agents/:agentId/messages). */
export const MESSAGE_MAX_CHARACTERS = 10_000;
export const AgentMessageRequestSchema = z.strictObject({ text: z.string().trim().min(1).max(MESSAGE_MAX_CHARACTERS) });

/** An operator's decision on a tool call that waits (POST /agents/:agentId/approvals/:toolCallId). */
export const ApprovalDecisionRequestSchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  note: z.string().max(2000).optional(),
});

/** A follow-up run on a finished agent's result (POST /agents/:agentId/continue). */
export const ContinueAgentRequestSchema = z.strictObject({
  /** The follow-up's work item: what to do next. */
  instructions: z.string().trim().min(1).max(10_000),
  taskId: Identifier.optional(),
  options: AgentOptionsSchema.optional(),
});

export type AgentContext = z.infer<typeof AgentContextSchema>;
export type AgentOptions = z.infer<typeof AgentOptionsSchema>;
export type ApprovalRule = z.infer<typeof ApprovalRuleSchema>;
export type AgentMessageRequest = z.infer<typeof AgentMessageRequestSchema>;
export type ApprovalDecisionRequest = z.infer<typeof ApprovalDecisionRequestSchema>;
export type ContinueAgentRequest = z.infer<typeof ContinueAgentRequestSchema>;
export type SpawnAgentRequest = z.infer<typeof SpawnAgentRequestSchema>;
