import type { ApiMetrics } from '../../platform/metrics';
import { countSpawn, noteAgent } from '../observability';
import { followsRun, resumePoint, streamAgentEvents } from '../event-stream';
import { Router } from 'express';
import { z } from 'zod';
import { SpawnAgentRequestSchema } from '../../shared/agent-schemas';
import { AgentIdSchema, AgentResultPayloadSchema } from '../../shared/federated-agent-schemas';
import { AGENT_STATES, AGENT_TYPES, isTerminalState, type AgentState } from '../../shared/vocabulary';
import type { ModelProgress } from '../../shared/agent-events';
import { contextOf, costOf, resultOf, usageOf } from '../../domain/agents/agent-usage';
import type { AgentListRow, AgentService, LiveStatus } from '../../domain/agents/agent-service';
import type { PrismaClient } from '../../prisma/client';
import type { AgentEventFeed } from '../../domain/agents/agent-event-feed';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody, parseParams } from '../validation';
import { describeIssues } from '../../shared/zod-issues';

export const AgentIdParams = z.object({ agentId: AgentIdSchema });

export const SpawnAgentResponseSchema = z
  .object({ agentId: z.string(), status: z.enum(['spawning', 'queued', ...AGENT_STATES]), existing: z.boolean() })
  .openapi('SpawnAgentResponse');

export const AgentViewSchema = z
  .object({
    agentId: z.string(),
    taskId: z.string(),
    agentType: z.enum(AGENT_TYPES),
    state: z.enum(AGENT_STATES),
    turn: z.number().int(),
    lastTool: z.string().nullable(),
    usage: z.object({
      inputTokens: z.number().int(),
      outputTokens: z.number().int(),
      cacheCreationInputTokens: z.number().int(),
      cacheReadInputTokens: z.number().int(),
    }),
    /** The estimated cost in USD from the worker's price table (MODEL_PRICES); null when the model has no price. */
    costUsd: z.number().nullable(),
    /** Set once older tool results were cleared to keep the model's requests within its context window. */
    contextManagement: z
      .object({
        clearings: z.number().int(),
        clearedToolResults: z.number().int(),
        lastClearedAtTurn: z.number().int(),
      })
      .nullable(),
    /** While the model's reply streams: the text so far and the tool whose input it is writing. */
    modelProgress: z
      .object({
        turn: z.number().int(),
        text: z.string(),
        textLength: z.number().int(),
        tool: z.string().nullable(),
        toolInputCharacters: z.number().int(),
        at: z.string(),
      })
      .nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    /** Set for an agent that runs on a peer instance. */
    remoteInstance: z.object({ connectionId: z.string(), instanceId: z.string(), name: z.string() }).nullable(),
    remoteAgentId: z.string().nullable(),
    result: AgentResultPayloadSchema.nullable().optional(),
  })
  .openapi('Agent');
type AgentView = z.infer<typeof AgentViewSchema>;

export const ListAgentsQuerySchema = z.strictObject({
  state: z.enum(AGENT_STATES).optional(),
  taskId: z.string().max(128).optional(),
  agentType: z.enum(AGENT_TYPES).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

/** One event of an agent's log, as the SSE stream and the callbacks send it. */
export const AgentEventSchema = z
  .object({
    agentId: z.string(),
    seq: z.number().int().min(1),
    type: z.enum(['state', 'turn', 'progress', 'context', 'tool', 'result']),
    at: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('AgentEvent');

export const AgentListSchema = z
  .object({ agents: z.array(AgentViewSchema), nextCursor: z.string().nullable() })
  .openapi('AgentList');

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/spawn',
  summary: 'Start an agent on a task (a second spawn for a task whose agent is live returns that agent)',
  security: bearer,
  request: { body: { content: { 'application/json': { schema: SpawnAgentRequestSchema } } } },
  responses: {
    202: jsonContent(SpawnAgentResponseSchema, 'The agent was started'),
    200: jsonContent(
      SpawnAgentResponseSchema,
      'An agent for this task is still live; it is returned and nothing new starts',
    ),
    400: errorResponse('The body is not valid'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents',
  summary: "The workspace's agents, newest first, with filters and cursor pagination",
  security: bearer,
  request: { query: ListAgentsQuerySchema },
  responses: {
    200: jsonContent(AgentListSchema, 'A page of agents'),
    400: errorResponse('Bad filter or cursor'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/status',
  summary: 'State, turn, last tool, token usage, times, error and (when finished) the result',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    200: jsonContent(AgentViewSchema, 'The agent'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/events',
  summary:
    "Server-Sent Events of the run: state changes, model turns, tool calls with exit codes, the result. Each SSE id is the event's sequence number; reconnect with Last-Event-ID (or ?lastEventId=) to resume. Ends after the final state (with ?follow=false: once caught up).",
  security: bearer,
  request: { params: AgentIdParams, headers: z.object({ 'last-event-id': z.string().optional() }) },
  responses: {
    200: {
      description: 'text/event-stream of AgentEvent objects (data: JSON)',
      content: { 'text/event-stream': { schema: AgentEventSchema } },
    },
    400: errorResponse('Last-Event-ID is not a sequence number'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/{agentId}/kill',
  summary: 'Stop the agent: its run is cancelled and its sandbox removed',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    202: jsonContent(z.object({ agentId: z.string(), status: z.literal('killing') }), 'The kill signal was sent'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
    409: errorResponse('The agent has already finished'),
  },
});

export interface AgentRouteDeps {
  prisma: PrismaClient;
  feed: AgentEventFeed;
  agents: AgentService;
  metrics: ApiMetrics;
}

/** An agent, local or on a peer: the row, overlaid with what its running workflow says. */
export function toView(row: AgentListRow, live?: LiveStatus): AgentView {
  const local = live?.kind === 'local' ? live.status : undefined;
  const remote = live?.kind === 'remote' ? live.status : undefined;
  const state = (live?.status.state ?? row.state) as AgentState;
  return {
    agentId: row.id,
    taskId: row.taskId,
    agentType: row.agentType as AgentView['agentType'],
    state,
    turn: local?.turn ?? remote?.progress?.turn ?? row.turn,
    lastTool: local?.lastTool ?? remote?.progress?.lastTool ?? row.lastTool,
    usage: remote?.progress
      ? { cacheCreationInputTokens: 0, cacheReadInputTokens: 0, ...remote.progress.usage }
      : usageOf(row, local),
    costUsd: remote?.progress?.costUsd !== undefined ? remote.progress.costUsd : costOf(row, local),
    contextManagement: local?.contextManagement ?? contextOf(row),
    modelProgress: isTerminalState(state) ? null : ((row.modelProgress as ModelProgress | null) ?? null),
    error: live?.status.error ?? row.error,
    createdAt: row.createdAt.toISOString(),
    updatedAt: live?.status.updatedAt ?? row.updatedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    remoteInstance: row.remote
      ? {
          connectionId: row.remote.connectionId,
          instanceId: row.remote.connection.peerInstanceId,
          name: row.remote.connection.peerName,
        }
      : null,
    remoteAgentId: remote?.remoteAgentId ?? row.remote?.remoteAgentId ?? null,
    result: resultOf(row),
  };
}

export function agentRouter(deps: AgentRouteDeps): Router {
  const { agents } = deps;
  const router = Router();
  router.use('/agents', requireApiToken(deps.prisma));
  router.param('agentId', (_req, res, next, agentId: string) => {
    noteAgent(res, agentId);
    next();
  });

  router.post('/agents/spawn', async (req, res) => {
    const request = parseBody(SpawnAgentRequestSchema, req);
    const { agentId, status, existing } = await countSpawn(
      deps.metrics,
      { agentType: request.agentType, runsOn: 'local' },
      () => agents.spawn(workspaceOf(res), request),
      (spawned) => (spawned.existing ? 'existing' : spawned.status),
    );
    noteAgent(res, agentId);
    res.status(existing ? 200 : 202).json({ agentId, status, existing });
  });

  router.get('/agents', async (req, res) => {
    const parsed = ListAgentsQuerySchema.safeParse(req.query);
    if (!parsed.success) throw new ApiError(400, 'invalid_query', describeIssues(parsed.error));
    const { rows, nextCursor } = await agents.list(workspaceOf(res), parsed.data);
    res.json({ agents: rows.map((row) => ({ ...toView(row), result: undefined })), nextCursor });
  });

  router.get('/agents/:agentId/status', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const { row, live } = await agents.view(agentId, { workspaceId: workspaceOf(res) });
    res.json(toView(row, live));
  });

  router.get('/agents/:agentId/events', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const after = resumePoint(req);
    await agents.owned(agentId, { workspaceId: workspaceOf(res) });
    await streamAgentEvents(req, res, deps, agentId, after, followsRun(req));
  });

  router.post('/agents/:agentId/kill', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    await agents.kill(agentId, { workspaceId: workspaceOf(res) }, 'killed through the API');
    res.status(202).json({ agentId, status: 'killing' });
  });

  return router;
}
