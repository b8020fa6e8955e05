import type { ApiMetrics } from '../../platform/metrics';
import { countSpawn, noteAgent } from '../observability';
import { followsRun, resumePoint, streamAgentEvents } from '../event-stream';
import { Router } from 'express';
import {
  AgentMessageRequestSchema,
  ApprovalDecisionRequestSchema,
  ContinueAgentRequestSchema,
  SpawnAgentRequestSchema,
} from '../../shared/agent-schemas';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import type { ModelProgress } from '../../shared/agent-events';
import { contextOf, costOf, resultOf, usageOf } from '../../domain/agents/agent-usage';
import type { AgentListRow, AgentService, LiveStatus } from '../../domain/agents/agent-service';
import type { PrismaClient } from '../../prisma/client';
import type { AgentEventFeed } from '../../domain/agents/agent-event-feed';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { parseBody, parseParams } from '../validation';
import { describeIssues } from '../../shared/zod-issues';
import { AgentIdParams, ListAgentsQuerySchema, AgentView, ToolCallParams } from '../schemas/agents';

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
    parentAgentId: row.parentAgentId,
    ...(row.followUps ? { followUps: row.followUps.map((followUp) => followUp.id) } : {}),
    ...(remote && !isTerminalState(state) ? { pendingApproval: remote.progress?.pendingApproval ?? null } : {}),
    ...(local
      ? {
          pendingApproval: local.pendingApproval ?? null,
          pauseRequested: local.pauseRequested ?? false,
          ...(local.messages ? { messages: local.messages } : {}),
        }
      : {}),
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

  router.get('/agents/:agentId/result.bundle', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const bundle = await agents.resultBundle(agentId, { workspaceId: workspaceOf(res) });
    res
      .type('application/x-git-bundle')
      .setHeader('content-disposition', `attachment; filename="${agentId}.bundle"`)
      .setHeader('x-commit-sha', bundle.commitSha)
      .send(Buffer.from(bundle.data));
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

  router.post('/agents/:agentId/continue', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const request = parseBody(ContinueAgentRequestSchema, req);
    const followUp = await agents.continueFrom(agentId, workspaceOf(res), request);
    noteAgent(res, followUp.agentId);
    res.status(followUp.existing ? 200 : 202).json({
      agentId: followUp.agentId,
      status: followUp.status,
      existing: followUp.existing,
      parentAgentId: agentId,
    });
  });

  // Steering a live run (each a workflow update: the answer says whether the run took it).
  router.post('/agents/:agentId/messages', async (req, res) => {
    const { agentId } = parseParams(AgentIdParams, req);
    const { text } = parseBody(AgentMessageRequestSchema, req);
    const owner = { workspaceId: workspaceOf(res) };
    const answer = await agents.steer(agentId, owner, { kind: 'message', text });
    res.status(202).json({ agentId, ...answer });
  });

  router.post('/agents/:agentId/approvals/:toolCallId', async (req, res) => {
    const { agentId, toolCallId } = parseParams(ToolCallParams, req);
    const { decision, note } = parseBody(ApprovalDecisionRequestSchema, req);
    const owner = { workspaceId: workspaceOf(res) };
    const action = { kind: 'approval' as const, toolCallId, decision, ...(note ? { note } : {}) };
    const decided = await agents.steer(agentId, owner, action);
    res.json({ agentId, ...decided });
  });

  for (const action of ['pause', 'resume'] as const)
    router.post(`/agents/:agentId/${action}`, async (req, res) => {
      const { agentId } = parseParams(AgentIdParams, req);
      const owner = { workspaceId: workspaceOf(res) };
      const answer = await agents.steer(agentId, owner, { kind: action });
      res.status(202).json({ agentId, ...answer });
    });

  return router;
}
