import type { ApiMetrics } from '../../platform/metrics';
import { countSpawn, noteAgent } from '../observability';
import { Router } from 'express';
import { LIVE_STATUS_DEADLINE_MS, type LiveStatus, type AgentRow } from '../../domain/agents/agent-service';
import type { FederatedAgentService } from '../../domain/agents/federated-agent-service';
import type { PrismaClient } from '../../prisma/client';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import { FederatedSpawnRequestSchema, type RemoteProgress } from '../../shared/federated-agent-schemas';
import { type KillRequest } from '../../workflows/federated-spawn/contract';
import { requireApiToken, workspaceOf } from '../auth';
import { parseBody, parseParams } from '../validation';
import { AgentIdParams } from '../schemas/agents';
import { resultOf } from '../../domain/agents/agent-usage';
import type { FederatedAgentView } from '../schemas/federated-agents';

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
