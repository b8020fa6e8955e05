import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from '../../platform/logger';
import type { PgListener } from '../../platform/pg-listener';
import type { PrismaClient } from '../../prisma/client';
import { sessionCallbacksWorkflowId, sessionEventsAppendedSignal } from '../../workflows/session-callbacks/contract';
import { parseEventNotification, SESSION_EVENTS_CHANNEL } from '../agents/agent-event-feed';

/** Signals in flight at once; the rest wait their turn (a burst of events coalesces per session). */
const MAX_IN_FLIGHT = 20;
const RETRY_MS = 2_000;
const MAX_TRIES = 15;

/**
 * Wakes sessions' callback deliveries: for each event appended to an agent whose session has a
 * callback (the session_events channel), its sessionCallbacks workflow gets a signal with the newest
 * sequence number. Signals for one session coalesce while one is in flight. After the listener
 * reconnects (notifications were missed), every session with undelivered events is woken.
 */
export function startCallbackWakeups(
  listener: PgListener,
  temporal: Client,
  prisma: PrismaClient,
  log: Logger,
): { stop(): void } {
  const newest = new Map<string, number>(); // sessions to signal, with the newest sequence
  const inFlight = new Set<string>();
  const tries = new Map<string, number>();
  const state = { stopped: false };

  const pump = (): void => {
    for (const [agentId, seq] of newest) {
      if (state.stopped || inFlight.size >= MAX_IN_FLIGHT) return;
      if (inFlight.has(agentId)) continue;
      newest.delete(agentId);
      inFlight.add(agentId);
      temporal.workflow
        .getHandle(sessionCallbacksWorkflowId(agentId))
        .signal(sessionEventsAppendedSignal, { seq })
        .then(() => tries.delete(agentId))
        .catch((error: unknown) => {
          if (error instanceof WorkflowNotFoundError) return; // delivered everything already, or never had a callback
          const attempt = (tries.get(agentId) ?? 0) + 1;
          if (attempt >= MAX_TRIES) {
            tries.delete(agentId);
            log.warn({ agentId, err: error }, "could not wake a session's callback delivery; its own timer will");
            return;
          }
          tries.set(agentId, attempt);
          setTimeout(() => wake(agentId, seq), RETRY_MS).unref();
        })
        .finally(() => {
          inFlight.delete(agentId);
          pump();
        });
    }
  };

  const wake = (agentId: string, seq: number): void => {
    if (state.stopped) return;
    newest.set(agentId, Math.max(seq, newest.get(agentId) ?? 0));
    pump();
  };

  listener.on(SESSION_EVENTS_CHANNEL, (payload) => {
    const event = parseEventNotification(payload);
    if (event) wake(event.agentId, event.seq);
  });
  listener.onReconnect(() => {
    prisma.$queryRaw<Array<{ agent_id: string; seq: number }>>`
      SELECT s.agent_id, newest.seq FROM sessions s
      CROSS JOIN LATERAL (SELECT max(seq) AS seq FROM agent_events e WHERE e.agent_id = s.agent_id) newest
      WHERE s.callback_url IS NOT NULL AND newest.seq > s.delivered_seq`
      .then((rows) => {
        for (const row of rows) wake(row.agent_id, row.seq);
      })
      .catch((error: unknown) =>
        log.warn({ err: error }, 'could not look for sessions with undelivered events; their own timers will'),
      );
  });
  return {
    stop() {
      state.stopped = true;
    },
  };
}
