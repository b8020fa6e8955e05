import { ApplicationFailure } from '@temporalio/activity';
import {
  INCOMING_EVENT_PATH,
  PeerError,
  postSigned,
  refusalCode,
  verifyReply,
  type PeerTransport,
} from '../federation/client';
import { signingKey, type IdentityHolder } from '../federation/identity';
import { newNonce } from '../federation/messages';
import { SignatureError } from '../federation/signatures';
import type { WorkerMetrics } from '../platform/metrics';
import type { PrismaClient } from '../prisma/client';
import { FEDERATION_FAILURES } from '../workflows/federation-command/contract';
import { type AgentLifecycleEvent } from '../shared/federated-agent-schemas';
import { type AgentOrigin, type LifecycleSnapshot } from '../workflows/hub-event-delivery/contract';

/**
 * The spoke's side of EVENTs: tells the hub that spawned an agent about one of its state changes,
 * signed like a command, and accepts the hub's acknowledgement only when the hub signed it for this
 * event. At least once: the hub deduplicates on the event id.
 */
const { peerUnreachable: PEER_UNREACHABLE, eventRefused: EVENT_REFUSED } = FEDERATION_FAILURES;

export interface HubEventDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  peers: PeerTransport;
  metrics: WorkerMetrics;
}

/** Refusals worth trying again later: the hub is busy, or the connection is suspended for now. */
const isTransient = (status: number, code: string): boolean =>
  status >= 500 || status === 429 || code === 'connection_suspended';

/** One state change of an agent, numbered, for the hub that spawned it. */
interface AgentEventPush {
  agentId: string;
  origin: AgentOrigin;
  eventId: string;
  sequence: number;
  snapshot: LifecycleSnapshot;
}

export function createHubEventActivities(deps: HubEventDeps) {
  return {
    async pushAgentEvent(input: AgentEventPush): Promise<void> {
      try {
        await push(input);
        deps.metrics.eventDeliveries.inc({ outcome: 'delivered' });
      } catch (error) {
        deps.metrics.eventDeliveries.inc({
          outcome: error instanceof ApplicationFailure && error.nonRetryable ? 'refused' : 'failed',
        });
        throw error;
      }
    },
  };

  /** Signs and sends one event; resolves once the hub acknowledged it with a reply signed for this event. */
  async function push(input: AgentEventPush): Promise<void> {
    const connection = await deps.prisma.federationConnection.findUniqueOrThrow({
      where: { id: input.origin.connectionId },
      include: { keys: true },
    });
    if (connection.status === 'DISCONNECTED')
      throw ApplicationFailure.nonRetryable(`the connection to ${connection.peerName} is DISCONNECTED`, EVENT_REFUSED);
    const identity = deps.identity.current();
    const payload: AgentLifecycleEvent = {
      agentId: input.agentId,
      spawnMessageId: input.origin.spawnMessageId,
      sequence: input.sequence,
      ...input.snapshot,
    };
    const nonce = newNonce();
    const body = Buffer.from(
      JSON.stringify({
        messageId: input.eventId,
        instanceId: identity.instanceId,
        eventType: 'agent.lifecycle',
        payload,
        timestamp: new Date().toISOString(),
        nonce,
      }),
    );
    let reply;
    try {
      reply = await postSigned(
        deps.peers,
        new URL(INCOMING_EVENT_PATH, connection.peerUrl).toString(),
        body,
        signingKey(identity),
      );
    } catch (error) {
      throw ApplicationFailure.retryable(
        `${connection.peerName} did not answer (${error instanceof PeerError ? error.code : 'peer_error'})`,
        PEER_UNREACHABLE,
      );
    }
    if (reply.status !== 200) {
      const code = refusalCode(reply.body);
      const message = `${connection.peerName} refused event ${input.sequence} (${reply.status} ${code})`;
      if (isTransient(reply.status, code)) throw ApplicationFailure.retryable(message, PEER_UNREACHABLE);
      throw ApplicationFailure.nonRetryable(message, EVENT_REFUSED);
    }
    try {
      verifyReply(reply, connection.keys, { messageId: input.eventId, nonce, instanceId: connection.peerInstanceId });
    } catch (error) {
      // An acknowledgement we cannot trust is no acknowledgement: send again.
      throw ApplicationFailure.retryable(
        `the acknowledgement of ${connection.peerName} did not verify ` +
          `(${error instanceof SignatureError ? error.code : 'reply_invalid'})`,
        PEER_UNREACHABLE,
      );
    }
  }
}
