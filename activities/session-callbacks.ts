import { ApplicationFailure, Context } from '@temporalio/activity';
import { eventsAfter, isFinalEvent } from '../domain/agents/agent-events';
import { signCallbackToken } from '../domain/sessions/callback-tokens';
import type { IdentityHolder } from '../federation/identity';
import type { WorkerMetrics } from '../platform/metrics';
import { outboundRequest, OutboundError, type OutboundPolicy } from '../platform/outbound-http';
import type { PrismaClient } from '../prisma/client';
import { isTerminalState } from '../shared/agents';
import type { SessionCallbackBody } from '../shared/sessions';

export interface SessionCallbackDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  outbound: OutboundPolicy;
  metrics: WorkerMetrics;
}

const POLL_INTERVAL_MS = 250;
const CALLBACK_TIMEOUT_MS = 15_000;

export function createSessionCallbackActivities(deps: SessionCallbackDeps) {
  const { prisma } = deps;

  /** POSTs one event; a receiver that does not answer 2xx makes the attempt fail (and Temporal retry it). */
  async function post(url: string, audience: string, body: SessionCallbackBody): Promise<void> {
    const token = await signCallbackToken(deps.identity.current(), { sessionId: body.sessionId, audience, eventId: body.eventId, sequence: body.sequence });
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
      throw ApplicationFailure.retryable(`callback ${body.sequence} (${body.type}) not delivered: ${reason}`, 'CallbackUndelivered');
    }
    if (status < 200 || status > 299) {
      deps.metrics.callbackDeliveries.inc({ outcome: 'failed' });
      throw ApplicationFailure.retryable(`callback ${body.sequence} (${body.type}) not delivered: the receiver answered ${status}`, 'CallbackUndelivered');
    }
    deps.metrics.callbackDeliveries.inc({ outcome: 'delivered' });
  }

  return {
    /**
     * Follows the session's event log from what the receiver last acknowledged and POSTs each event
     * in order, heartbeating; ends after the final state. At least once: an event whose
     * acknowledgement was lost is sent again, with the same eventId.
     */
    async deliverSessionEvents(input: { agentId: string }): Promise<{ delivered: number }> {
      const session = await prisma.session.findUniqueOrThrow({ where: { agentId: input.agentId } });
      if (!session.callbackUrl || !session.callbackAudience) return { delivered: session.deliveredSeq };
      const context = Context.current();
      let delivered = session.deliveredSeq;
      for (;;) {
        context.heartbeat({ delivered });
        if (context.cancellationSignal.aborted) throw ApplicationFailure.nonRetryable('the delivery was cancelled', 'CallbackRefused');
        const events = await eventsAfter(prisma, input.agentId, delivered, 20);
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
          context.heartbeat({ delivered });
          if (isFinalEvent(event)) return { delivered };
        }
        if (events.length > 0) continue;
        const agent = await prisma.agent.findUniqueOrThrow({ where: { id: input.agentId }, select: { state: true } });
        if (isTerminalState(agent.state) && (await eventsAfter(prisma, input.agentId, delivered, 1)).length === 0) return { delivered };
        await context.sleep(POLL_INTERVAL_MS);
      }
    },
  };
}
