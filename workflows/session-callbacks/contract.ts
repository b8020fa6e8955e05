import { signal } from '../../shared/temporal-definitions';
import type { AgentEventType } from '../../shared/agent-events';

/** The workflow that delivers a session's lifecycle events to its callback URL, one per session. */
export const SESSION_CALLBACKS_WORKFLOW = 'sessionCallbacks';
export const sessionCallbacksWorkflowId = (sessionId: string): string => `session-callbacks-${sessionId}`;

export interface SessionCallbacksInput {
  agentId: string;
  /** Carried across continue-as-new: the sequence the receiver acknowledged last. */
  delivered?: number;
}

export interface SessionCallbacksResult {
  delivered: number;
  /** Set when delivery was given up (the receiver refused or stayed unreachable too long). */
  undelivered?: string;
}

/** What one delivery activity did: how far the receiver acknowledged, and whether anything is left. */
export interface CallbackBatch {
  delivered: number;
  /** The final event was delivered (or the agent ended with nothing left, or the session has no callback). */
  ended: boolean;
  /** More events were waiting when the batch stopped: deliver again without waiting. */
  more: boolean;
}

/** Wakes a session's delivery: its agent's log grew to `seq` (sent by the workers' PostgreSQL listener). */
export const sessionEventsAppendedSignal = signal<[{ seq: number }]>('sessionEventsAppended');

/** What a callback receiver gets, POSTed as JSON with `Authorization: Bearer <token>`. */
export interface SessionCallbackBody {
  /** `<sessionId>:<sequence>`: the same event delivered again has the same id. */
  eventId: string;
  sessionId: string;
  /** 1, 2, 3, … per session, without gaps: a receiver applies them in order. */
  sequence: number;
  type: AgentEventType;
  occurredAt: string;
  data: Record<string, unknown>;
}
