import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { z } from 'zod';
import { signingKey, type IdentityHolder } from '../../federation/identity';
import {
  checkIncomingEvent,
  FederationRejection,
  refusal,
  signedReply,
  type IncomingRequest,
  type SignedMessageResponse,
} from '../../federation/incoming';
import type { Logger } from '../../platform/logger';
import { isUniqueViolation, Prisma, type PrismaClient } from '../../prisma/client';
import { type AgentState, DEFAULT_PRIORITY, TERMINAL_STATES } from '../../shared/vocabulary';
import {
  AgentLifecycleEventSchema,
  localOptionsFrom,
  type FederatedSpawnRequestSchema,
} from '../../shared/federated-agent-schemas';
import {
  connectionStatusSignal,
  FEDERATED_SPAWN_WORKFLOW,
  remoteAgentEventSignal,
  type FederatedSpawnInput,
} from '../../workflows/federated-spawn/contract';
import { admitRepository, RepositoryRefused, type RepositoryPolicy } from '../../platform/repository-policy';
import { DomainError } from '../errors';
import type { AgentRow, AgentService, LiveStatus } from './agent-service';
import { startAgentWorkflow } from './agent-workflows';
import { describeIssues } from '../../shared/zod-issues';
import { firstEvent } from './agent-events';
import { recordContact } from './federated-contact';

/**
 * The hub side of agents run on a peer instance: a spawn through a connection starts the durable
 * federatedSpawn workflow that delivers it and follows the remote agent; the spoke's signed
 * agent.lifecycle events are verified here and handed to that workflow; a change of a connection's
 * status is passed on to every agent followed through it. Viewing and killing go through the agent
 * service like any agent's.
 */
export type FederatedSpawnRequest = z.infer<typeof FederatedSpawnRequestSchema>;

export interface FederatedSpawnOutcome {
  agentId: string;
  state: AgentState;
  spawnedAt: string;
  existing: boolean;
}

export interface FederatedAgentServiceDeps {
  temporal: Client;
  prisma: PrismaClient;
  agents: AgentService;
  identity: IdentityHolder;
  taskQueue: string;
  /** FEDERATION_POLL_INTERVAL: seconds without news after which the hub asks the spoke. */
  pollIntervalSeconds: number;
  /** host[:port] of PUBLIC_URL: what incoming signatures must cover. */
  authority: string;
  rateLimitPerMinute: number;
  /** Where this instance may push results to (a federated spawn's delivery is the hub's). */
  repositories: RepositoryPolicy;
  log: Logger;
}

const LIVE = { notIn: [...TERMINAL_STATES] };

export function createFederatedAgentService(deps: FederatedAgentServiceDeps) {
  const { prisma, temporal, agents } = deps;

  /** The caller's agent that runs on a peer: not_found for unknown and local agents. */
  async function viewRemote(agentId: string, workspaceId: string): Promise<{ row: AgentRow; live?: LiveStatus }> {
    const view = await agents.view(agentId, { workspaceId });
    if (!view.row.remote) throw new DomainError('not_found', 'not_found', `No federated agent ${agentId}`);
    return view;
  }

  async function recordEvent(data: Prisma.FederationEventUncheckedCreateInput): Promise<'accepted' | 'duplicate'> {
    try {
      await prisma.federationEvent.create({ data });
      return 'accepted';
    } catch (error) {
      if (isUniqueViolation(error)) return 'duplicate';
      throw error;
    }
  }

  /**
   * Answers a refused event, unsigned; recorded only for a sender that proved it holds a peer's key (else counted in
   * the metric only).
   */
  async function refuseEvent(rejection: FederationRejection): Promise<SignedMessageResponse> {
    if (rejection.connectionId === null) {
      deps.log.debug({ code: rejection.code }, 'unauthenticated federation event refused');
      return refusal(rejection);
    }
    await prisma.federationEvent.create({
      data: {
        id: randomUUID(),
        connectionId: rejection.connectionId,
        status: 'rejected',
        errorCode: rejection.code,
        error: rejection.message,
      },
    });
    deps.log.warn({ code: rejection.code, connectionId: rejection.connectionId }, 'federation event rejected');
    return refusal(rejection);
  }

  return {
    /** Records the agent and starts its federatedSpawn workflow; the spawn itself is delivered by the workflow. */
    async spawn(workspaceId: string, request: FederatedSpawnRequest): Promise<FederatedSpawnOutcome> {
      const { connectionId, delivery, ...payload } = request;
      const connection = await prisma.federationConnection.findUnique({ where: { id: connectionId } });
      if (!connection) throw new DomainError('not_found', 'not_found', `No connection ${connectionId}`);
      if (connection.workspaceId !== workspaceId)
        throw new DomainError('forbidden', 'forbidden', `Connection ${connectionId} belongs to another workspace`);
      if (connection.status !== 'ACTIVE')
        throw new DomainError(
          'conflict',
          'connection_not_active',
          `the connection to ${connection.peerName} is ${connection.status}`,
        );

      if (delivery?.remote)
        await admitRepository(deps.repositories, delivery.remote, { allowLocal: true }).catch((error: unknown) => {
          if (error instanceof RepositoryRefused)
            throw new DomainError('invalid', error.code, `delivery.remote: ${error.message}`);
          throw error;
        });
      const agentId = `agent-${randomUUID()}`;
      const spawnMessageId = randomUUID();
      let createdAt: Date;
      try {
        ({ createdAt } = await prisma.agent.create({
          data: {
            id: agentId,
            workspaceId,
            taskId: payload.taskId,
            agentType: payload.agentType,
            state: 'spawning',
            context: payload.context,
            options: { ...localOptionsFrom(payload.options), ...(delivery ? { delivery } : {}) },
            remote: { create: { connectionId, spawnMessageId } },
            events: { create: firstEvent('spawning') },
          },
        }));
      } catch (error) {
        // One live agent per task: a second spawn of a task already running through this connection returns that agent.
        if (!isUniqueViolation(error)) throw error;
        const live = await prisma.agent.findFirst({
          where: { workspaceId, taskId: payload.taskId, state: LIVE },
          include: { remote: true },
        });
        if (live?.remote?.connectionId !== connectionId)
          throw new DomainError(
            'conflict',
            'task_busy',
            `another agent is live for task ${payload.taskId}${live ? ` (${live.id})` : ''}`,
          );
        return {
          agentId: live.id,
          state: live.state as AgentState,
          spawnedAt: live.createdAt.toISOString(),
          existing: true,
        };
      }

      const input: FederatedSpawnInput = {
        agentId,
        workspaceId,
        remote: { connectionId, instanceId: connection.peerInstanceId, name: connection.peerName },
        spawnMessageId,
        payload,
        spawnedAt: createdAt.toISOString(),
        pollIntervalSeconds: deps.pollIntervalSeconds,
        ...(delivery?.push ? { deliver: true } : {}),
      };
      const started = await startAgentWorkflow(temporal, prisma, {
        workflowType: FEDERATED_SPAWN_WORKFLOW,
        taskQueue: deps.taskQueue,
        agentId,
        args: [input],
        taskId: payload.taskId,
        agentType: payload.agentType,
        workspaceId,
        state: 'spawning',
        priority: payload.priority ?? DEFAULT_PRIORITY,
        context: payload.context,
        limits: localOptionsFrom(payload.options),
        runsOnPeer: connection.peerName,
      });
      if (!started) return { agentId, state: 'spawning', spawnedAt: createdAt.toISOString(), existing: true };
      return { agentId, state: 'spawning', spawnedAt: createdAt.toISOString(), existing: false };
    },

    view: viewRemote,

    async kill(agentId: string, workspaceId: string, reason: string): Promise<void> {
      await agents.kill(agentId, { workspaceId }, reason, { remoteOnly: true });
    },

    /**
     * POST /api/v1/federation/incoming/event: a signed agent.lifecycle EVENT from a spoke, verified like
     * a command, accepted only for an agent this hub spawned through that very connection, recorded,
     * handed to the agent's workflow, and acknowledged with a signed reply.
     */
    async handleEvent(request: IncomingRequest): Promise<SignedMessageResponse> {
      try {
        const { connection, envelope } = await checkIncomingEvent(
          { prisma, authority: deps.authority, rateLimitPerMinute: deps.rateLimitPerMinute },
          request,
        );
        const parsed = AgentLifecycleEventSchema.safeParse(envelope.payload);
        if (!parsed.success)
          throw new FederationRejection(400, 'invalid_payload', describeIssues(parsed.error), connection.id);
        const event = parsed.data;
        const remote = await prisma.federatedAgent.findUnique({ where: { spawnMessageId: event.spawnMessageId } });
        if (remote?.connectionId !== connection.id)
          throw new FederationRejection(
            404,
            'unknown_agent',
            'no agent of this instance was spawned through this connection with that message',
            connection.id,
          );
        if (remote.remoteAgentId !== null && remote.remoteAgentId !== event.agentId)
          throw new FederationRejection(
            403,
            'agent_mismatch',
            'the event names another agent than the spawn created',
            connection.id,
          );
        const outcome = await recordEvent({
          id: randomUUID(),
          connectionId: connection.id,
          eventId: envelope.messageId,
          agentId: remote.agentId,
          sequence: event.sequence,
          state: event.state,
          status: 'accepted',
        });
        const receivedAt = new Date();
        await recordContact(prisma, remote.agentId, receivedAt);
        // Handed over even when seen before: the workflow deduplicates, and a crash between record and signal loses
        // nothing.
        await temporal.workflow
          .getHandle(remote.agentId)
          .signal(remoteAgentEventSignal, {
            ...event,
            eventId: envelope.messageId,
            receivedAt: receivedAt.toISOString(),
          })
          .catch((error: unknown) => {
            if (!(error instanceof WorkflowNotFoundError)) throw error; // the hub already finished following it
          });
        const identity = deps.identity.current();
        return signedReply(
          {
            messageId: randomUUID(),
            inReplyTo: envelope.messageId,
            instanceId: identity.instanceId,
            requestNonce: envelope.nonce,
            status: 'ok',
            result: { accepted: true, duplicate: outcome === 'duplicate' },
            timestamp: new Date().toISOString(),
          },
          signingKey(identity),
        );
      } catch (error) {
        if (!(error instanceof FederationRejection)) throw error;
        return refuseEvent(error);
      }
    },

    refuseEvent,

    /**
     * Tells every agent followed through a connection that its status changed (they pause, resume or stop following).
     */
    async notifyConnectionStatus(connectionId: string, status: string): Promise<void> {
      const followed = await prisma.federatedAgent.findMany({
        where: { connectionId, agent: { state: LIVE } },
        select: { agentId: true },
      });
      await Promise.all(
        followed.map(({ agentId }) =>
          temporal.workflow
            .getHandle(agentId)
            .signal(connectionStatusSignal, { status })
            .catch((error: unknown) => {
              deps.log.warn(
                { err: error, agentId },
                'an agent followed through the connection was not told of its new status',
              );
            }),
        ),
      );
    },
  };
}

export type FederatedAgentService = ReturnType<typeof createFederatedAgentService>;
