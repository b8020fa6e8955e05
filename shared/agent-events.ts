import type { AgentState } from './agents';

/**
 * What happened to an agent, in order: its state changes, model turns, tool calls and result. Each
 * event has a sequence number per agent (1, 2, 3, … without gaps): the id of the SSE event stream
 * (GET /agents/:agentId/events) and the sequence of a session's callbacks.
 */
export type AgentEventData =
  | { type: 'state'; state: AgentState; detail: string | null; error: string | null }
  | { type: 'turn'; turn: number; inputTokens: number; outputTokens: number; toolCalls: string[]; text: string }
  | { type: 'tool'; turn: number; toolCallId: string; tool: string; status: 'finished' | 'unknown'; exitCode: number | null; isError: boolean }
  | { type: 'result'; branch: string | null; commitSha: string | null; filesChanged: number | null; testExitCode: number | null };

export type AgentEventType = AgentEventData['type'];

export interface AgentEventView {
  agentId: string;
  seq: number;
  type: AgentEventType;
  at: string;
  data: AgentEventData;
}
