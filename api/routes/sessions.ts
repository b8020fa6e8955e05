import { Router } from 'express';
import { z } from 'zod';
import type { AgentEventFeed } from '../../domain/agents/agent-event-feed';
import type { SessionService } from '../../domain/sessions/session-service';
import { callbackJwks } from '../../domain/sessions/callback-tokens';
import type { IdentityHolder } from '../../federation/identity';
import type { ApiMetrics } from '../../platform/metrics';
import { checkReadiness, isReady, type ReadinessTargets } from '../../platform/readiness';
import type { PrismaClient } from '../../prisma/client';
import { SpawnSessionRequestSchema } from '../../shared/session-schemas';
import { describeIssues } from '../../shared/zod-issues';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { followsRun, resumePoint, streamAgentEvents } from '../event-stream';
import { countSpawn, noteAgent } from '../observability';
import { parseBody, parseParams } from '../validation';
import { toView } from './agents';
import { SessionIdParams, ListSessionsQuery, GatewayHealthSchema } from '../schemas/sessions';

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
