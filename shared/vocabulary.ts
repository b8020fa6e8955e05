/**
 * The agent vocabulary every layer speaks: types, states, priorities and token counting. A leaf module
 * (no imports), so the API, the CLI, the client and workflow code can all use it.
 */

export const AGENT_TYPES = ['worker', 'reviewer', 'tester'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

/**
 * input_required: a tool call waits for an operator's approval; paused: an operator paused the run. In both the sandbox
 * is paused (no CPU) and no model call is made.
 */
export const AGENT_STATES = [
  'queued',
  'spawning',
  'running',
  'input_required',
  'paused',
  'completed',
  'failed',
  'killed',
  'timed_out',
] as const;
export type AgentState = (typeof AGENT_STATES)[number];
export const TERMINAL_STATES: readonly AgentState[] = ['completed', 'failed', 'killed', 'timed_out'];

/** Whether a state is final: no agent leaves completed, failed, killed or timed_out. */
export const isTerminalState = (state: unknown): state is AgentState => TERMINAL_STATES.includes(state as AgentState);

/** Admission priority: 1 (lowest) to 10. */
export const PRIORITY_MIN = 1;
export const PRIORITY_MAX = 10;
export const DEFAULT_PRIORITY = 5;

export interface TokenUsage {
  /** Prompt tokens read at full price (neither written to nor read from the cache). */
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens written to the prompt cache. */
  cacheCreationInputTokens?: number;
  /** Prompt tokens read from the prompt cache. */
  cacheReadInputTokens?: number;
}

/** Dollars kept to a hundredth of a micro-dollar, so sums of many small costs read cleanly. */
export const roundUsd = (usd: number): number => Math.round(usd * 1e8) / 1e8;

/** Every token a run was billed for: what the token budget counts. */
export const tokensSpent = (usage: TokenUsage): number =>
  usage.inputTokens + usage.outputTokens + (usage.cacheCreationInputTokens ?? 0) + (usage.cacheReadInputTokens ?? 0);

/** When older tool results were cleared from what the model sees, to keep its requests within the context window. */
export interface ContextManagement {
  /** How many times results were cleared, and how many tool results are cleared now. */
  clearings: number;
  clearedToolResults: number;
  /** The turn of the latest clearing. */
  lastClearedAtTurn: number;
}

/**
 * What became of a result's git bundle: stored (served by result.bundle), too_large, unavailable (it could not be
 * made) or pruned (by the retention, with the workspace).
 */
export const RESULT_BUNDLE_STATUSES = ['stored', 'too_large', 'unavailable', 'pruned'] as const;
export type ResultBundleStatus = (typeof RESULT_BUNDLE_STATUSES)[number];

/**
 * Why a result's push failed: the remote refused the credentials, its branch had moved on, it did not answer, the
 * base commit could not be fetched, the policy refused the remote, no bundle was stored, or git said no otherwise.
 */
export const DELIVERY_FAILURES = [
  'authentication_failed',
  'non_fast_forward',
  'unreachable',
  'base_missing',
  'remote_refused',
  'no_bundle',
  'push_failed',
] as const;
export type DeliveryFailure = (typeof DELIVERY_FAILURES)[number];

/** What became of a result's push (options.delivery): where it went, or why it did not. */
export type DeliveryOutcome =
  | { pushed: true; remote: string; branch: string; commit: string }
  | { pushed: false; remote: string; branch: string; commit: string; failure: DeliveryFailure; reason: string };
