import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { z } from 'zod';
import type { AgentContextSchema, AgentOptionsSchema, SpawnAgentRequestSchema } from './agent-schemas';
import type { AgentOrigin } from './federated-agents';

/**
 * The agent vocabulary shared by the API and the agentRun workflow. The request types are inferred
 * from the zod schemas in agent-schemas.ts (type-only import: no zod in the workflow bundle).
 */
export const AGENT_RUN_WORKFLOW = 'agentRun';

export const AGENT_TYPES = ['worker', 'reviewer', 'tester'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

export const AGENT_STATES = ['queued', 'spawning', 'running', 'completed', 'failed', 'killed', 'timed_out'] as const;
export type AgentState = (typeof AGENT_STATES)[number];
export const TERMINAL_STATES: readonly AgentState[] = ['completed', 'failed', 'killed', 'timed_out'];

/** Whether a state is final: no agent leaves completed, failed, killed or timed_out. */
export const isTerminalState = (state: unknown): state is AgentState => TERMINAL_STATES.includes(state as AgentState);

export type AgentContext = z.infer<typeof AgentContextSchema>;
export type AgentOptions = z.infer<typeof AgentOptionsSchema>;
export type SpawnAgentRequest = z.infer<typeof SpawnAgentRequestSchema>;

export interface AgentRunInput {
  agentId: string;
  workspaceId: string;
  taskId: string;
  agentType: AgentType;
  context: AgentContext;
  options: AgentOptions;
  /** What the API answered: queued when every sandbox slot looked taken. */
  initialState: 'spawning' | 'queued';
  /** Admission priority, 1 (lowest) to 10; absent in histories from before admission (default 5). */
  priority?: number;
  /** The host whose slot the admission workflow gave the spawn's own request: the run launches there without asking again. */
  admittedOn?: string;
  /** Turns one workflow run handles before it continues as new (keeps each history small). Default 50. */
  turnsPerRun?: number;
  /** Set when a run continues as new: where the previous run left off. */
  resume?: AgentResume;
  /** Set when a hub spawned this agent through a federation connection: its state changes go there. */
  origin?: AgentOrigin;
}

export interface AgentResume {
  hostQueue: string;
  containerName: string;
  baseSha: string;
  turn: number;
  usage: TokenUsage;
  startedAt: string;
  /** Epoch ms at which the per-task timeout fires; it spans every run of the chain. */
  deadlineAt: number;
  lastTool: string | null;
  error: string | null;
  summary: string;
  /** Carried across continue-as-new (absent in older histories). */
  costUsd?: number | null;
  contextManagement?: ContextManagement | null;
}

export interface TokenUsage {
  /** Prompt tokens read at full price (neither written to nor read from the cache). */
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens written to the prompt cache (absent in histories from before caching). */
  cacheCreationInputTokens?: number;
  /** Prompt tokens read from the prompt cache. */
  cacheReadInputTokens?: number;
}

/** Dollars kept to a hundredth of a micro-dollar, so sums of many small costs read cleanly. */
export const roundUsd = (usd: number): number => Math.round(usd * 1e8) / 1e8;

/** Every token a run was billed for: what the token budget counts. */
export const tokensSpent = (usage: TokenUsage): number => usage.inputTokens + usage.outputTokens + (usage.cacheCreationInputTokens ?? 0) + (usage.cacheReadInputTokens ?? 0);

/** When older tool results were cleared from what the model sees, to keep its requests within the context window. */
export interface ContextManagement {
  /** How many times results were cleared, and how many tool results are cleared now. */
  clearings: number;
  clearedToolResults: number;
  /** The turn of the latest clearing. */
  lastClearedAtTurn: number;
}

export interface AgentStatus {
  agentId: string;
  taskId: string;
  agentType: AgentType;
  state: AgentState;
  turn: number;
  lastTool: string | null;
  usage: TokenUsage;
  /** The estimated cost in USD from the worker's price table; null when the model has no price (absent in older histories). */
  costUsd?: number | null;
  /** Set once older tool results were cleared to fit the context window. */
  contextManagement?: ContextManagement | null;
  startedAt: string;
  updatedAt: string;
  error: string | null;
}

export const killAgentSignal = defineSignal<[{ reason?: string }]>('kill');
export const agentStatusQuery = defineQuery<AgentStatus>('status');

