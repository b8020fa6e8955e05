import path from 'node:path';
import type Docker from 'dockerode';
import type { ActivityDeps } from '../activities';
import { createAnthropicClient } from '../activities/model';
import { instanceLabel } from '../activities/sandbox-reconciler';
import { detectQuotaMode } from '../activities/workspace';
import type { AppConfig } from '../config/env';
import { peerTransport } from '../federation/client';
import type { IdentityHolder } from '../federation/identity';
import type { WorkerMetrics } from '../platform/metrics';
import { repositoryPolicy } from '../platform/repository-policy';
import type { PrismaClient } from '../prisma/client';
import { sandboxHostQueue } from '../shared/task-queues';

/** Everything the activities need, from the settings and the process's clients (the worker and the tests build them alike). */
export async function activityDeps(config: AppConfig, clients: { prisma: PrismaClient; docker: Docker; identity: IdentityHolder; metrics: WorkerMetrics }): Promise<ActivityDeps> {
  const peers = peerTransport(config);
  return {
    quotaMode: config.WORKSPACE_QUOTA === 'auto' ? await detectQuotaMode() : config.WORKSPACE_QUOTA,
    workspaceMaxMb: config.WORKSPACE_MAX_MB,
    ...clients,
    anthropic: createAnthropicClient(config.ANTHROPIC_API_KEY, config.ANTHROPIC_BASE_URL),
    sandboxImage: config.SANDBOX_IMAGE,
    sandboxRuntime: config.SANDBOX_RUNTIME,
    workspacesDir: path.join(config.DATA_DIR, 'workspaces'),
    hostQueue: sandboxHostQueue(config.HOST_ID),
    instance: instanceLabel(config.TEMPORAL_NAMESPACE, config.TASK_QUEUE),
    maxConcurrentAgents: config.MAX_CONCURRENT_AGENTS,
    peers,
    repositories: repositoryPolicy(config, peers.policy),
  };
}
