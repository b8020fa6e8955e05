import type { ApiMetrics } from '../../platform/metrics';
import { countSpawn, noteAgent } from '../observability';
import { Router } from 'express';
import { z } from 'zod';
import { LIVE_STATUS_DEADLINE_MS, type LiveStatus, type AgentRow } from '../../domain/agents/agent-service';
import type { FederatedAgentService } from '../../domain/agents/federated-agents';
import type { PrismaClient } from '../../prisma/client';
import { isTerminalState, AGENT_STATES, AGENT_TYPES, type AgentState } from '../../shared/vocabulary';
import {
  AgentResultPayloadSchema,
  FederatedSpawnRequestSchema,
  type RemoteProgress,
  RemoteProgressSchema,
} from '../../shared/federated-agent-schemas';
import { FOLLOWING, type KillRequest } from '../../workflows/federated-spawn/contract';
import { requireApiToken, workspaceOf } from '../auth';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody, parseParams } from '../validation';
import { AgentIdParams } from './agents';
import { resultOf } from '../../domain/agents/agent-usage';

/**
 * The hub's endpoints for agents run on a peer instance (FED-010), answering in the federation API's
 * envelope `{success: true, data}`; errors are `{success: false, error: {code, message}}` as everywhere.
 */
const success = <T extends z.ZodType>(data: T) => z.object({ success: z.literal(true), data });

export const FederatedSpawnResponseSchema = z
  .object({ agentId: z.string(), state: z.enum(AGENT_STATES), spawnedAt: z.string(), existing: z.boolean() })
  .openapi('FederatedSpawnResponse');

export const FederatedAgentViewSchema = z
  .object({
    agentId: z.string(),
    taskId: z.string(),
    agentType: z.enum(AGENT_TYPES),
    /** The remote agent's state as mirrored by the hub (FED-010 calls it status). */
    status: z.enum(AGENT_STATES),
    spawnedAt: z.string(),
    startedAt: z.string().nullable(),
    progress: RemoteProgressSchema.nullable(),
    remoteInstance: z.object({ connectionId: z.string(), instanceId: z.string(), name: z.string(), url: z.string() }),
    remoteAgentId: z.string().nullable(),
    /** The last time the spoke answered; it never goes backwards. */
    lastContactAt: z.string().nullable(),
    /**
     * spawning (delivering the spawn), following, waiting (the kill is confirmed, the final state awaited),
     * unreachable (since unreachableSince), paused (the connection is not ACTIVE), worker_unavailable (the
     * hub's worker did not answer: the last recorded state is shown) or ended.
     */
    following: z.enum(FOLLOWING),
    unreachableSince: z.string().nullable(),
    /** Why following is paused, why a kill is not delivered yet, what the last failed contact said. */
    note: z.string().nullable(),
    kill: z.object({ reason: z.string(), requestedAt: z.string(), deliveredAt: z.string().nullable() }).nullable(),
    error: z.string().nullable(),
    finishedAt: z.string().nullable(),
    result: AgentResultPayloadSchema.nullable(),
  })
  .openapi('FederatedAgentStatus');
type FederatedAgentView = z.infer<typeof FederatedAgentViewSchema>;

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/agents/spawn',
  summary:
    'Run an agent on a peer instance through a connection; the hub follows it to the end (options.timeout in milliseconds)',
  security: bearer,
  request: { body: { content: { 'application/json': { schema: FederatedSpawnRequestSchema } } } },
  responses: {
    202: jsonContent(success(FederatedSpawnResponseSchema), 'The spawn is on its way'),
    200: jsonContent(
      success(FederatedSpawnResponseSchema),
      'An agent for this task is still live through this connection; it is returned',
    ),
    400: errorResponse('The body is not valid'),
    403: errorResponse('The connection belongs to another workspace'),
    404: errorResponse('No such connection'),
    409: errorResponse('The connection is not ACTIVE, or another agent is live for the task'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/agents/{agentId}/status',
  summary: 'The mirrored state, remote progress, remote instance and time of last contact of an agent run on a peer',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    200: jsonContent(success(FederatedAgentViewSchema), 'The agent'),
    403: errorResponse('Another workspace’s agent'),
    404: errorResponse('No such federated agent'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/agents/{agentId}/kill',
  summary: 'Stop an agent run on a peer: the hub sends agent.kill and waits for the confirmation',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    202: jsonContent(success(z.object({ agentId: z.string(), state: z.literal('killing') })), 'The kill is on its way'),
    403: errorResponse('Another workspace’s agent'),
    404: errorResponse('No such federated agent'),
    409: errorResponse('The agent has already finished'),
  },
});

const latest = (one: string | null, other: string | null): string | null =>
  one === null ? other : other === null || one > other ? one : other;

const workerUnavailableNote = (recorded: string | null): string =>
  `the hub's worker did not answer within ${LIVE_STATUS_DEADLINE_MS / 1000} s: this is the last recorded state` +
  (recorded ? ` (${recorded})` : '');

/**
 * A federated agent's status: the workflow's answer, or (its worker not answering, or the agent ended) the recorded
 * one.
 */
export function federatedView(row: AgentRow, live?: LiveStatus): FederatedAgentView {
  const remote = live?.kind === 'remote' ? live.status : undefined;
  const stored = row.remote;
  if (!stored) throw new Error(`agent ${row.id} does not run on a peer`);
  const state = (remote?.state ?? row.state) as AgentState;
  return {
    agentId: row.id,
    taskId: row.taskId,
    agentType: row.agentType as FederatedAgentView['agentType'],
    status: state,
    spawnedAt: row.createdAt.toISOString(),
    startedAt: remote?.startedAt ?? stored.remoteStartedAt?.toISOString() ?? null,
    progress: remote?.progress ?? (stored.progress as RemoteProgress | null),
    remoteInstance: {
      connectionId: stored.connectionId,
      instanceId: stored.connection.peerInstanceId,
      name: stored.connection.peerName,
      url: stored.connection.peerUrl,
    },
    remoteAgentId: remote?.remoteAgentId ?? stored.remoteAgentId,
    lastContactAt: latest(remote?.lastContactAt ?? null, stored.lastContactAt?.toISOString() ?? null),
    following: remote?.following ?? (isTerminalState(state) ? 'ended' : 'worker_unavailable'),
    unreachableSince: remote?.unreachableSince ?? null,
    note: remote ? remote.note : isTerminalState(state) ? stored.note : workerUnavailableNote(stored.note),
    kill: remote ? remote.kill : (stored.kill as KillRequest | null),
    error: remote?.error ?? row.error,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    result: resultOf(row),
  };
}

export function federatedAgentRouter(deps: {
  prisma: PrismaClient;
  federatedAgents: FederatedAgentService;
  metrics: ApiMetrics;
}): Router {
  const { federatedAgents } = deps;
  const router = Router();
  router.use('/api/v1/federation/agents', requireApiToken(deps.prisma));
  router.param('agentId', (_req, res, next, agentId: string) => {
    noteAgent(res, agentId);
    next();
  });

  router.post('/api/v1/federation/agents/spawn', async (req, res) => {
    const request = parseBody(FederatedSpawnRequestSchema, req);
    const data = await countSpawn(
      deps.metrics,
      { agentType: request.agentType, runsOn: 'peer' },
      () => federatedAgents.spawn(workspaceOf(res), request),
      (spawned) => (spawned.existing ? 'existing' : spawned.state),
    );
    noteAgent(res, data.agentId);
    res.status(data.existing ? 200 : 202).json({ success: true, data });
  });

  router.get('/api/v1/federation/agents/:agentId/status', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const { row, live } = await federatedAgents.view(agentId, workspaceOf(res));
    res.json({ success: true, data: federatedView(row, live) });
  });

  router.post('/api/v1/federation/agents/:agentId/kill', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    await federatedAgents.kill(agentId, workspaceOf(res), 'killed through the hub API');
    res.status(202).json({ success: true, data: { agentId, state: 'killing' } });
  });

  return router;
}
