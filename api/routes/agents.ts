import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Router } from 'express';
import { z } from 'zod';
import { Prisma, type PrismaClient } from '../../prisma/client';
import { SpawnAgentRequestSchema } from '../../shared/agent-schemas';
import {
  AGENT_RUN_WORKFLOW,
  AGENT_STATES,
  AGENT_TYPES,
  agentStatusQuery,
  killAgentSignal,
  TERMINAL_STATES,
  type AgentRunInput,
  type AgentState,
  type AgentStatus,
} from '../../shared/agents';
import { AGENT_STATE, AGENT_TYPE, TASK_ID, WORKSPACE_ID } from '../../shared/search-attributes';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody, parseParams } from '../validation';

const AgentIdParams = z.object({ agentId: z.string().regex(/^agent-[0-9a-f-]{36}$/, 'is not an agent id') });

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
    usage: z.object({ inputTokens: z.number().int(), outputTokens: z.number().int() }),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    result: z
      .object({ branch: z.string().nullable(), commitSha: z.string().nullable(), diff: z.string(), testOutput: z.string().nullable(), testExitCode: z.number().int().nullable(), summary: z.string().nullable() })
      .nullable()
      .optional(),
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

export const AgentListSchema = z.object({ agents: z.array(AgentViewSchema), nextCursor: z.string().nullable() }).openapi('AgentList');

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
    200: jsonContent(SpawnAgentResponseSchema, 'An agent for this task is still live; it is returned and nothing new starts'),
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
  responses: { 200: jsonContent(AgentListSchema, 'A page of agents'), 400: errorResponse('Bad filter or cursor'), 401: errorResponse('No valid API token') },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/status',
  summary: 'State, turn, last tool, token usage, times, error and (when finished) the result',
  security: bearer,
  request: { params: AgentIdParams },
  responses: { 200: jsonContent(AgentViewSchema, 'The agent'), 403: errorResponse('The agent belongs to another workspace'), 404: errorResponse('No such agent') },
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
  temporal: Client;
  prisma: PrismaClient;
  taskQueue: string;
  /** MAX_CONCURRENT_AGENTS: with this many agents spawning or running, a new one is answered as queued. */
  maxConcurrentAgents: number;
}

type AgentRow = Prisma.AgentGetPayload<{ include: { result: true } }>;

function toView(row: AgentRow, live?: AgentStatus): AgentView {
  return {
    agentId: row.id,
    taskId: row.taskId,
    agentType: row.agentType as AgentView['agentType'],
    state: (live?.state ?? row.state) as AgentState,
    turn: live?.turn ?? row.turn,
    lastTool: live?.lastTool ?? row.lastTool,
    usage: live?.usage ?? { inputTokens: row.inputTokens, outputTokens: row.outputTokens },
    error: live?.error ?? row.error,
    createdAt: row.createdAt.toISOString(),
    updatedAt: live?.updatedAt ?? row.updatedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    result: row.result
      ? { branch: row.result.branch, commitSha: row.result.commitSha, diff: row.result.diff, testOutput: row.result.testOutput, testExitCode: row.result.testExitCode, summary: row.result.summary }
      : null,
  };
}

function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || Number.isNaN(createdAt.getTime())) throw new ApiError(400, 'invalid_cursor', 'The cursor is not valid');
  return { createdAt, id };
}

export function agentRouter(deps: AgentRouteDeps): Router {
  const { prisma, temporal } = deps;
  const router = Router();
  router.use('/agents', requireApiToken(prisma));

  /** The caller's agent, or 404 (unknown) / 403 (another workspace's). */
  async function ownedAgent(agentId: string, workspaceId: string): Promise<AgentRow> {
    const row = await prisma.agent.findUnique({ where: { id: agentId }, include: { result: true } });
    if (!row) throw new ApiError(404, 'not_found', `No agent ${agentId}`);
    if (row.workspaceId !== workspaceId) throw new ApiError(403, 'forbidden', `Agent ${agentId} belongs to another workspace`);
    return row;
  }

  router.post('/agents/spawn', async (req, res) => {
    const request = parseBody(SpawnAgentRequestSchema, req);
    const workspaceId = workspaceOf(res);
    const agentId = `agent-${randomUUID()}`;
    const occupied = await prisma.agent.count({ where: { state: { in: ['spawning', 'running'] } } });
    const initialState = occupied >= deps.maxConcurrentAgents ? 'queued' : 'spawning';
    try {
      await prisma.agent.create({
        data: { id: agentId, workspaceId, taskId: request.taskId, agentType: request.agentType, state: initialState, context: request.context, options: request.options },
      });
    } catch (error) {
      // The partial unique index allows one live agent per task: return that one.
      if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')) throw error;
      const live = await prisma.agent.findFirst({ where: { workspaceId, taskId: request.taskId, state: { notIn: [...TERMINAL_STATES] } } });
      if (!live) throw new ApiError(409, 'conflict', 'Another spawn for this task is in progress; retry');
      res.status(200).json({ agentId: live.id, status: live.state as AgentState, existing: true });
      return;
    }
    const input: AgentRunInput = { agentId, workspaceId, taskId: request.taskId, agentType: request.agentType, context: request.context, options: request.options, initialState };
    try {
      await temporal.workflow.start(AGENT_RUN_WORKFLOW, {
        taskQueue: deps.taskQueue,
        workflowId: agentId,
        args: [input],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: TASK_ID, value: request.taskId },
          { key: AGENT_TYPE, value: request.agentType },
          { key: WORKSPACE_ID, value: workspaceId },
          { key: AGENT_STATE, value: initialState },
        ],
      });
    } catch (error) {
      await prisma.agent.update({ where: { id: agentId }, data: { state: 'failed', error: 'the workflow could not be started', finishedAt: new Date() } });
      throw error;
    }
    res.status(202).json({ agentId, status: initialState, existing: false });
  });

  router.get('/agents', async (req, res) => {
    const parsed = ListAgentsQuerySchema.safeParse(req.query);
    if (!parsed.success) throw new ApiError(400, 'invalid_query', parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
    const { state, taskId, agentType, limit, cursor } = parsed.data;
    const after = cursor ? decodeCursor(cursor) : null;
    const rows = await prisma.agent.findMany({
      where: {
        workspaceId: workspaceOf(res),
        ...(state ? { state } : {}),
        ...(taskId ? { taskId } : {}),
        ...(agentType ? { agentType } : {}),
        ...(after ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] } : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit + 1,
      include: { result: true },
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    res.json({ agents: page.map((row) => ({ ...toView(row), result: undefined })), nextCursor: rows.length > limit && last ? encodeCursor(last) : null });
  });

  router.get('/agents/:agentId/status', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const row = await ownedAgent(agentId, workspaceOf(res));
    let live: AgentStatus | undefined;
    if (!TERMINAL_STATES.includes(row.state as AgentState)) {
      // The query reads workflow memory; without a worker to answer it, the row is the answer.
      live = await temporal
        .withDeadline(Date.now() + 3_000, () => temporal.workflow.getHandle(agentId).query(agentStatusQuery))
        .catch(() => undefined);
    }
    res.json(toView(row, live));
  });

  router.post('/agents/:agentId/kill', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const row = await ownedAgent(agentId, workspaceOf(res));
    if (TERMINAL_STATES.includes(row.state as AgentState)) throw new ApiError(409, 'already_finished', `Agent ${agentId} has already finished (${row.state})`);
    try {
      await temporal.workflow.getHandle(agentId).signal(killAgentSignal, { reason: 'killed through the API' });
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new ApiError(409, 'already_finished', `Agent ${agentId} has already finished`);
      throw error;
    }
    res.status(202).json({ agentId, status: 'killing' });
  });

  return router;
}
