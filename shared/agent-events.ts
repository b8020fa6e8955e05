import type { AgentState, DeliveryOutcome } from './vocabulary';

/**
 * What happened to an agent, in order: its state changes, model turns, tool calls and result. Each
 * event has a sequence number per agent (1, 2, 3, … without gaps): the id of the SSE event stream
 * (GET /agents/:agentId/events) and the sequence of a session's callbacks.
 */
export type AgentEventData =
  | { type: 'state'; state: AgentState; detail: string | null; error: string | null }
  | ({ type: 'turn'; turn: number; toolCalls: string[]; text: string } & TurnUsage)
  | { type: 'context'; turn: number; clearedToolResults: number; estimatedTokens: number; budgetTokens: number }
  | {
      type: 'tool';
      turn: number;
      toolCallId: string;
      tool: string;
      status: 'finished' | 'unknown';
      exitCode: number | null;
      isError: boolean;
    }
  | {
      type: 'result';
      branch: string | null;
      commitSha: string | null;
      filesChanged: number | null;
      testExitCode: number | null;
      costUsd?: number | null;
    }
  | ({ type: 'delivery' } & DeliveryOutcome)
  /** An operator's message, as it reached the model's conversation at the start of `turn`. */
  | { type: 'message'; turn: number; position: number; text: string }
  | ({ type: 'approval'; toolCallId: string; tool: string; rule: number } & (
      | { phase: 'requested'; expiresAt: string | null; onTimeout: 'approve' | 'deny' }
      | { phase: 'decided'; decision: 'approve' | 'deny'; decidedBy: 'operator' | 'timeout'; note: string | null }
    ));

/** A model turn's tokens and estimated cost (cache and cost fields absent in events from before caching). */
export type TurnUsage = {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens?: number;
  cacheReadInputTokens?: number;
  /** This turn's and the run's estimated cost in USD so far; null when the model has no price. */
  costUsd?: number | null;
  totalCostUsd?: number | null;
};

/** What the model is writing while its reply streams (turn: the turn it will complete). */
export type ModelProgress = {
  turn: number;
  /** The text so far (its last 1000 characters) and its full length. */
  text: string;
  textLength: number;
  /** The tool whose input the model is writing (or wrote last in this reply), and that input's length so far. */
  tool: string | null;
  toolInputCharacters: number;
  at: string;
};

export type AgentEventType = AgentEventData['type'];

/**
 * What the event stream sends while the model's reply streams (SSE event `progress`, without an id):
 * live only, never stored in the log, so it takes no place in the numbering and is not sent to callbacks.
 */
export interface AgentProgressMessage {
  agentId: string;
  type: 'progress';
  data: ModelProgress;
}

export interface AgentEventView {
  agentId: string;
  seq: number;
  type: AgentEventType;
  at: string;
  data: AgentEventData;
}
