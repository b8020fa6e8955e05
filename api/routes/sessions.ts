import { Router } from 'express';
import { z } from 'zod';
import type { AgentEventFeed } from '../../domain/agents/agent-event-feed';
import type { SessionService } from '../../domain/sessions/session-service';
import { callbackJwks } from '../../domain/sessions/callback-tokens';
import type { IdentityHolder } from '../../federation/identity';
import type { ApiMetrics } from '../../platform/metrics';
import { checkReadiness, isReady, type ReadinessTargets } from '../../platform/readiness';
import type { PrismaClient } from '../../prisma/client';
import { AGENT_STATES } from '../../shared/vocabulary';
import { SpawnSessionRequestSchema } from '../../shared/session-schemas';
import { describeIssues } from '../../shared/zod-issues';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { followsRun, resumePoint, streamAgentEvents } from '../event-stream';
import { countSpawn, noteAgent } from '../observability';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody, parseParams } from '../validation';
import { AgentEventSchema, AgentViewSchema, toView } from './agents';

/**
 * The gateway API (seed ORCH-007): sessions are agent runs spawned from a gateway's task, reported to
 * its callback URL. Paths and payloads: POST /orchestrator/sessions/spawn {task, context, callback_url}.
 */
const SessionIdParams = z.object({ id: z.string().regex(/^agent-[0-9a-f-]{36}$/, 'is not a session id') });
const ListSessionsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) });

export const SpawnSessionResponseSchema = z
  .object({ sessionId: z.string(), state: z.enum(AGENT_STATES), existing: z.boolean() })
  .openapi('SessionSpawned');
export const SessionViewSchema = z
  .object({
    sessionId: z.string(),
    state: z.enum(AGENT_STATES),
    task: z.record(z.string(), z.unknown()),
    callback: z.object({ url: z.string(), audience: z.string(), deliveredSequence: z.number().int() }).nullable(),
    agent: AgentViewSchema,
  })
  .openapi('Session');
export const SessionListSchema = z
  .object({
    sessions: z.array(
      z.object({
        sessionId: z.string(),
        taskId: z.string(),
        agentType: z.string(),
        state: z.enum(AGENT_STATES),
        runsOn: z.enum(['local', 'peer']),
        createdAt: z.string(),
        finishedAt: z.string().nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .openapi('SessionList');
const GatewayHealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    temporal: z.enum(['up', 'down']),
    database: z.enum(['up', 'down']),
    docker: z.enum(['up', 'down']),
  })
  .openapi('GatewayHealth');

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerPath({
  method: 'post',
  path: '/orchestrator/sessions/spawn',
  summary:
    "Start a session: an agent run for a gateway's task, its lifecycle POSTed to callback_url (docs/sessions.md)",
  security: bearer,
  request: { body: { content: { 'application/json': { schema: SpawnSessionRequestSchema } } } },
  responses: {
    202: jsonContent(SpawnSessionResponseSchema, 'The session started'),
    200: jsonContent(
      SpawnSessionResponseSchema,
      "The task's session is still live; it is returned and nothing new starts",
    ),
    400: errorResponse('The body is not valid (the message names the field), or callback_url is not allowed'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions',
  summary: "The workspace's sessions, newest first",
  security: bearer,
  request: { query: ListSessionsQuery },
  responses: { 200: jsonContent(SessionListSchema, 'Sessions') },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions/{id}/status',
  summary: "The session: its task, its callback's progress and its agent's status",
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    200: jsonContent(SessionViewSchema, 'The session'),
    403: errorResponse('Another workspace'),
    404: errorResponse('No such session'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/orchestrator/sessions/{id}/kill',
  summary: 'Hard termination: the run is cancelled and its container removed within seconds, even mid-tool',
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    202: jsonContent(z.object({ sessionId: z.string(), status: z.literal('killing') }), 'Killing'),
    404: errorResponse('No such session'),
    409: errorResponse('Already finished'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions/{id}/events',
  summary:
    "The session's Server-Sent Events (as GET /agents/{agentId}/events): resumable with Last-Event-ID, ends after the final state",
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: AgentEventSchema } } },
    404: errorResponse('No such session'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/health',
  summary: 'Whether Temporal, the database and Docker answer',
  responses: {
    200: jsonContent(GatewayHealthSchema, 'All up'),
    503: jsonContent(GatewayHealthSchema, 'Something is down'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/.well-known/jwks.json',
  summary: "The keys that sign session callbacks' tokens (JWK Set, EdDSA)",
  responses: { 200: { description: 'JWK Set' } },
});

export interface SessionRouteDeps {
  prisma: PrismaClient;
  feed: AgentEventFeed;
  sessions: SessionService;
  identity: IdentityHolder;
  metrics: ApiMetrics;
  readiness: ReadinessTargets;
}

export function sessionRouter(deps: SessionRouteDeps): Router {
  const { sessions } = deps;
  const router = Router();

  router.get('/orchestrator/health', async (_req, res) => {
    const checked = await checkReadiness(deps.readiness);
    const up = (status: string): 'up' | 'down' => (status === 'up' ? 'up' : 'down');
    const body: z.infer<typeof GatewayHealthSchema> = {
      status: isReady(checked) ? 'ok' : 'degraded',
      temporal: up(checked.temporal.status),
      database: up(checked.postgres.status),
      docker: up(checked.docker.status),
    };
    res.status(isReady(checked) ? 200 : 503).json(body);
  });
  router.get('/.well-known/jwks.json', async (_req, res) => {
    res.setHeader('cache-control', 'max-age=300');
    res.json(await callbackJwks(deps.identity.current()));
  });

  router.use('/orchestrator/sessions', requireApiToken(deps.prisma));
  router.param('id', (_req, res, next, id: string) => {
    noteAgent(res, id);
    next();
  });

  router.post('/orchestrator/sessions/spawn', async (req, res) => {
    const request = parseBody(SpawnSessionRequestSchema, req);
    const spawned = await countSpawn(
      deps.metrics,
      { agentType: request.context.agentType, runsOn: request.context.connectionId ? 'peer' : 'local' },
      () => sessions.spawn(workspaceOf(res), request),
      (result) => (result.existing ? 'existing' : result.state),
    );
    noteAgent(res, spawned.sessionId);
    res.status(spawned.existing ? 200 : 202).json(spawned);
  });

  router.get('/orchestrator/sessions', async (req, res) => {
    const query = ListSessionsQuery.safeParse(req.query);
    if (!query.success) throw new ApiError(400, 'invalid_query', describeIssues(query.error, 'query'));
    const rows = await sessions.list(workspaceOf(res), query.data.limit);
    res.json({
      sessions: rows.map((row) => ({
        sessionId: row.agentId,
        taskId: row.agent.taskId,
        agentType: row.agent.agentType,
        state: row.agent.state,
        runsOn: row.agent.remote ? 'peer' : 'local',
        createdAt: row.createdAt.toISOString(),
        finishedAt: row.agent.finishedAt?.toISOString() ?? null,
        error: row.agent.error,
      })),
    });
  });

  router.get('/orchestrator/sessions/:id/status', async (req, res) => {
    const { id } = parseParams(SessionIdParams, req);
    const { row, live, session } = await sessions.view(id, workspaceOf(res));
    const agent = toView(row, live);
    res.json({
      sessionId: id,
      state: agent.state,
      task: session.task,
      callback:
        session.callbackUrl && session.callbackAudience
          ? { url: session.callbackUrl, audience: session.callbackAudience, deliveredSequence: session.deliveredSeq }
          : null,
      agent,
    });
  });

  router.post('/orchestrator/sessions/:id/kill', async (req, res) => {
    const { id } = parseParams(SessionIdParams, req);
    await sessions.kill(id, workspaceOf(res));
    res.status(202).json({ sessionId: id, status: 'killing' });
  });

  router.get('/orchestrator/sessions/:id/events', async (req, res) => {
    const { id } = parseParams(SessionIdParams, req);
    const after = resumePoint(req);
    await sessions.view(id, workspaceOf(res));
    await streamAgentEvents(req, res, deps, id, after, followsRun(req));
  });

  return router;
}
