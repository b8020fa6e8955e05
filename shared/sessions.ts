import type { AgentEventType } from './agent-events';
/** The workflow that delivers a session's lifecycle events to its callback URL, one per session. */
export const SESSION_CALLBACKS_WORKFLOW = 'sessionCallbacks';
export const sessionCallbacksWorkflowId = (sessionId: string): string => `session-callbacks-${sessionId}`;

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
