import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { OutboundPolicy } from '../../platform/outbound-http';
import type { PrismaClient } from '../../prisma/client';
import type { AgentState } from '../../shared/vocabulary';
import { SESSION_CALLBACKS_WORKFLOW, sessionCallbacksWorkflowId } from '../../workflows/session-callbacks/contract';
import { agentContextFromTask, TASK_PRIORITIES, type SpawnSessionRequest } from '../../shared/session-schemas';
import type { AgentRow, AgentService, LiveStatus } from '../agents/agent-service';
import type { FederatedAgentService } from '../agents/federated-agent-service';
import { DomainError } from '../errors';
import { defaultAudience } from './callback-tokens';

/**
 * Gateway sessions: a session is an agent run (local, or on a peer through a connection) spawned from
 * a gateway's task, whose lifecycle events are POSTed to the gateway's callback URL. The session id
 * is the agent id; everything else (status, kill, events) is the agent's.
 */
export interface SessionServiceDeps {
  prisma: PrismaClient;
  temporal: Client;
  agents: AgentService;
  federatedAgents: FederatedAgentService;
  taskQueue: string;
  /** Callback URLs obey the same outbound address policy as peers. */
  outbound: OutboundPolicy;
}

export interface SessionSpawned {
  sessionId: string;
  state: AgentState;
  existing: boolean;
}

export interface SessionRecord {
  row: AgentRow;
  live?: LiveStatus;
  session: {
    task: unknown;
    callbackUrl: string | null;
    callbackAudience: string | null;
    deliveredSeq: number;
    createdAt: Date;
  };
}

/**
 * Refuses a callback URL whose host resolves to an address the outbound policy forbids (checked again at each
 * delivery).
 */
async function admitCallbackUrl(policy: OutboundPolicy, url: string): Promise<void> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host)
    ? [host]
    : await lookup(host, { all: true })
        .then((found) => found.map((entry) => entry.address))
        .catch(() => []);
  if (addresses.length === 0)
    throw new DomainError('invalid', 'callback_url_refused', `callback_url: ${host} does not resolve`);
  if (!addresses.every((address) => policy.permits(address))) {
    throw new DomainError(
      'invalid',
      'callback_url_refused',
      `callback_url: ${host} is not an address this instance may call (see OUTBOUND_ALLOWED_NETWORKS)`,
    );
  }
}

export function createSessionService(deps: SessionServiceDeps) {
  const { prisma, temporal, agents, federatedAgents } = deps;

  /** The session's record; whose it is, the agent service checks (not_found, forbidden). */
  async function sessionOf(sessionId: string) {
    const session = await prisma.session.findUnique({ where: { agentId: sessionId } });
    if (!session) throw new DomainError('not_found', 'not_found', `No session ${sessionId}`);
    return session;
  }

  return {
    /** Starts the agent for a task, records the session, and starts the delivery of its callbacks. */
    async spawn(workspaceId: string, request: SpawnSessionRequest): Promise<SessionSpawned> {
      const { task, context } = request;
      if (request.callback_url) await admitCallbackUrl(deps.outbound, request.callback_url);
      const agentContext = agentContextFromTask(task, context);
      const priority = TASK_PRIORITIES[task.priority];
      let spawned: SessionSpawned;
      if (context.connectionId) {
        const { options } = context;
        const remote = await federatedAgents.spawn(workspaceId, {
          connectionId: context.connectionId,
          taskId: task.id,
          agentType: context.agentType,
          context: agentContext,
          priority,
          options: {
            timeout: options.timeout * 1000,
            maxRetries: options.maxRetries,
            model: options.model,
            maxTurns: options.maxTurns,
            tokenBudget: options.tokenBudget,
            resources: options.resources,
          },
        });
        spawned = { sessionId: remote.agentId, state: remote.state, existing: remote.existing };
      } else {
        const local = await agents.spawn(workspaceId, {
          taskId: task.id,
          agentType: context.agentType,
          context: agentContext,
          priority,
          options: context.options,
        });
        spawned = { sessionId: local.agentId, state: local.status, existing: local.existing };
      }
      const callbackUrl = request.callback_url ?? null;
      const callbackAudience = callbackUrl ? (request.callback_audience ?? defaultAudience(callbackUrl)) : null;
      // A repeated spawn of a live task returns its session as it was: the first spawn's callback stays.
      await prisma.session.upsert({
        where: { agentId: spawned.sessionId },
        create: { agentId: spawned.sessionId, task, callbackUrl, callbackAudience },
        update: {},
      });
      if (callbackUrl) {
        await temporal.workflow
          .start(SESSION_CALLBACKS_WORKFLOW, {
            taskQueue: deps.taskQueue,
            workflowId: sessionCallbacksWorkflowId(spawned.sessionId),
            args: [{ agentId: spawned.sessionId }],
            staticSummary: `callbacks of session ${spawned.sessionId} to ${new URL(callbackUrl).origin}`,
          })
          .catch((error: unknown) => {
            if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
          });
      }
      return spawned;
    },

    /** The session's agent (with its live status while it runs) and the session's own record. */
    async view(sessionId: string, workspaceId: string): Promise<SessionRecord> {
      const session = await sessionOf(sessionId);
      const { row, live } = await agents.view(sessionId, { workspaceId });
      return { row, ...(live ? { live } : {}), session };
    },

    /** Hard termination: the agent's kill (its container is gone within seconds, even mid-tool). */
    async kill(sessionId: string, workspaceId: string): Promise<void> {
      await sessionOf(sessionId);
      await agents.kill(sessionId, { workspaceId }, 'killed through the gateway session API');
    },

    /** The workspace's sessions, newest first. */
    async list(workspaceId: string, limit: number) {
      return await prisma.session.findMany({
        where: { agent: { workspaceId } },
        orderBy: { createdAt: 'desc' },
        take: limit,
        include: {
          agent: {
            select: {
              state: true,
              taskId: true,
              agentType: true,
              createdAt: true,
              finishedAt: true,
              error: true,
              remote: { select: { connectionId: true } },
            },
          },
        },
      });
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
