import { Router } from 'express';
import { z } from 'zod';
import { SpawnAgentRequestSchema } from '../../shared/agent-schemas';
import { AGENT_STATES, AGENT_TYPES, type AgentState, type AgentStatus } from '../../shared/agents';
import { createAgentService, type AgentRow, type AgentServiceDeps } from '../agent-service';
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

export type AgentRouteDeps = AgentServiceDeps;

export function toView(row: AgentRow, live?: AgentStatus): AgentView {
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
  const { prisma } = deps;
  const agents = createAgentService(deps);
  const router = Router();
  router.use('/agents', requireApiToken(prisma));

  router.post('/agents/spawn', async (req, res) => {
    const request = parseBody(SpawnAgentRequestSchema, req);
    const outcome = await agents.spawn(workspaceOf(res), request);
    res.status(outcome.existing ? 200 : 202).json(outcome);
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
    const { row, live } = await agents.view(agentId, workspaceOf(res));
    res.json(toView(row, live));
  });

  router.post('/agents/:agentId/kill', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    await agents.kill(agentId, workspaceOf(res), 'killed through the API');
    res.status(202).json({ agentId, status: 'killing' });
  });

  return router;
}
