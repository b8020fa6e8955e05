import { stat } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import { isTerminalState } from '../shared/vocabulary';
import { agentIdOfSandbox } from './agent-containers';
import { SANDBOX_LABEL_MANAGED } from './container-spec';
import { imageOf, listWorkspaces, removeWorkspace } from './workspace';

/**
 * Removes workspaces kept past the retention: those of agents that finished more than `retentionHours`
 * ago, and those no agent of this instance knows that are older than that. A workspace with a
 * container, or of an agent still live, is never touched. Run by the worker with the reconciler.
 */
export async function pruneWorkspaces(deps: {
  docker: Docker;
  prisma: PrismaClient;
  workspacesDir: string;
  retentionHours: number;
  now?: number;
}): Promise<string[]> {
  if (deps.retentionHours <= 0) return [];
  const cutoff = (deps.now ?? Date.now()) - deps.retentionHours * 3600 * 1000;
  const agentIds = await listWorkspaces(deps.workspacesDir);
  if (agentIds.length === 0) return [];
  const withContainer = new Set(
    (await deps.docker.listContainers({ all: true, filters: { label: [SANDBOX_LABEL_MANAGED] } })).map((container) =>
      agentIdOfSandbox(container),
    ),
  );
  const rows = new Map(
    (
      await deps.prisma.agent.findMany({
        where: { id: { in: agentIds } },
        select: { id: true, state: true, finishedAt: true },
      })
    ).map((row) => [row.id, row]),
  );
  const removed: string[] = [];
  for (const agentId of agentIds) {
    if (withContainer.has(agentId)) continue;
    const dir = path.join(deps.workspacesDir, agentId);
    const row = rows.get(agentId);
    const stale = row
      ? isTerminalState(row.state) && row.finishedAt !== null && row.finishedAt.getTime() < cutoff
      : (await stat(imageOf(dir)).catch(() => stat(dir))).mtimeMs < cutoff;
    if (!stale) continue;
    await removeWorkspace(dir);
    removed.push(agentId);
  }
  return removed;
}
