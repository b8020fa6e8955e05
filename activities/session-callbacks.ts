import { ApplicationFailure } from '@temporalio/activity';
import { eventsAfter, isFinalEvent } from '../domain/agents/agent-events';
import { signCallbackToken } from '../domain/sessions/callback-tokens';
import type { IdentityHolder } from '../federation/identity';
import type { WorkerMetrics } from '../platform/metrics';
import { outboundRequest, OutboundError, type OutboundPolicy } from '../platform/outbound-http';
import type { PrismaClient } from '../prisma/client';
import { isTerminalState } from '../shared/vocabulary';
import type { CallbackBatch, SessionCallbackBody } from '../workflows/session-callbacks/contract';

export interface SessionCallbackDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  outbound: OutboundPolicy;
  metrics: WorkerMetrics;
}

const CALLBACK_TIMEOUT_MS = 15_000;
/** One activity delivers at most this many events, or for about this long: it never holds a worker slot for long. */
const BATCH_EVENTS = 50;
const BATCH_MS = 30_000;

export function createSessionCallbackActivities(deps: SessionCallbackDeps) {
  const { prisma } = deps;

  /** POSTs one event; a receiver that does not answer 2xx makes the attempt fail (and Temporal retry it). */
  async function post(url: string, audience: string, body: SessionCallbackBody): Promise<void> {
    const token = await signCallbackToken(deps.identity.current(), {
      sessionId: body.sessionId,
      audience,
      eventId: body.eventId,
      sequence: body.sequence,
    });
    let status: number;
    try {
      ({ status } = await outboundRequest(deps.outbound, url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: Buffer.from(JSON.stringify(body)),
        timeoutMs: CALLBACK_TIMEOUT_MS,
        maxBytes: 64 * 1024,
      }));
    } catch (error) {
      deps.metrics.callbackDeliveries.inc({ outcome: 'failed' });
      const reason = error instanceof OutboundError ? error.reason : 'unreachable';
      throw ApplicationFailure.retryable(
        `callback ${body.sequence} (${body.type}) not delivered: ${reason}`,
        'CallbackUndelivered',
      );
    }
    if (status < 200 || status > 299) {
      deps.metrics.callbackDeliveries.inc({ outcome: 'failed' });
      throw ApplicationFailure.retryable(
        `callback ${body.sequence} (${body.type}) not delivered: the receiver answered ${status}`,
        'CallbackUndelivered',
      );
    }
    deps.metrics.callbackDeliveries.inc({ outcome: 'delivered' });
  }

  return {
    /**
     * POSTs the session's events after what the receiver acknowledged, in order, and records each
     * acknowledgement; stops after a batch (the workflow calls again) or after the final state. At
     * least once: an event whose acknowledgement was lost is sent again, with the same eventId.
     */
    async deliverSessionEvents(input: { agentId: string; after: number }): Promise<CallbackBatch> {
      const session = await prisma.session.findUniqueOrThrow({ where: { agentId: input.agentId } });
      let delivered = Math.max(session.deliveredSeq, input.after);
      if (!session.callbackUrl || !session.callbackAudience) return { delivered, ended: true, more: false };
      const started = Date.now();
      const events = await eventsAfter(prisma, input.agentId, delivered, BATCH_EVENTS);
      for (const event of events) {
        await post(session.callbackUrl, session.callbackAudience, {
          eventId: `${input.agentId}:${event.seq}`,
          sessionId: input.agentId,
          sequence: event.seq,
          type: event.type,
          occurredAt: event.at,
          data: event.data,
        });
        delivered = event.seq;
        await prisma.session.update({ where: { agentId: input.agentId }, data: { deliveredSeq: delivered } });
        if (isFinalEvent(event)) return { delivered, ended: true, more: false };
        if (Date.now() - started > BATCH_MS) return { delivered, ended: false, more: true };
      }
      if (events.length === BATCH_EVENTS) return { delivered, ended: false, more: true };
      // An agent that ended without a final event left (none will come) ends the delivery too.
      const agent = await prisma.agent.findUniqueOrThrow({ where: { id: input.agentId }, select: { state: true } });
      const ended =
        isTerminalState(agent.state) && (await eventsAfter(prisma, input.agentId, delivered, 1)).length === 0;
      return { delivered, ended, more: false };
    },
  };
}
