import path from 'node:path';
import type Docker from 'dockerode';
import type { InFlightModelCalls } from '../../model-client/calls-in-flight';
import type { WorkerMetrics } from '../../platform/metrics';
import type { RepositoryPolicy } from '../../platform/repository-policy';
import type { PrismaClient } from '../../prisma/client';
import { clampLimits, type SandboxRuntime } from '../../sandbox-runtime/container-spec';
import type { QuotaWatchdog } from '../../sandbox-runtime/quota-watchdog';
import type { RepositoryCache } from '../../sandbox-runtime/repository-cache';
import type { WarmPool } from '../../sandbox-runtime/warm-pool';
import type { QuotaMode } from '../../sandbox-runtime/workspace';
import type { AgentOptions } from '../../shared/agent-schemas';

export interface AgentSandboxDeps {
  metrics: WorkerMetrics;
  prisma: PrismaClient;
  docker: Docker;
  sandboxImage: string;
  sandboxRuntime: SandboxRuntime;
  workspacesDir: string;
  /** The task queue only this host's worker polls; sandbox activities are routed there. */
  hostQueue: string;
  /** The owning instance's label value (see instanceLabel). */
  instance: string;
  /** Agent sandboxes this host runs at once; more spawns wait in state queued. */
  maxConcurrentAgents: number;
  /** Where repositories may be cloned from. */
  repositories: RepositoryPolicy;
  /** How workspace disk quotas are enforced on this host (see sandbox-runtime/workspace.ts). */
  quotaMode: QuotaMode;
  /** The largest workspace quota this instance grants (WORKSPACE_MAX_MB). */
  workspaceMaxMb: number;
  /** Sandboxes started ahead of demand (WARM_POOL_SIZE), or null. */
  warmPool: WarmPool | null;
  /** The model calls in flight in this process: a kill stops its agent's. */
  modelCalls: InFlightModelCalls;
  /** Where quotas are only watched: the watch over every live sandbox of this host (null in loop mode). */
  quotaWatch: QuotaWatchdog | null;
  /** The mirrors of the repositories this host clones (REPOSITORY_CACHE), or null. */
  repositoryCache: RepositoryCache | null;
}

/** The agent's workspace quota: what its options ask for, within the instance's bound. */
export const quotaOf = (deps: Pick<AgentSandboxDeps, 'workspaceMaxMb'>, options: AgentOptions): number =>
  Math.min(clampLimits(options.resources).diskMb, deps.workspaceMaxMb);

/** The agent's workspace directory on this host. */
export const workspaceOf = (deps: Pick<AgentSandboxDeps, 'workspacesDir'>, agentId: string): string =>
  path.join(deps.workspacesDir, agentId);
