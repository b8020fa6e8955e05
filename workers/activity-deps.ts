import path from 'node:path';
import type Docker from 'dockerode';
import type { ActivityDeps } from '../activities';
import { createAnthropicClient } from '../activities/model';
import { instanceLabel } from './jobs/sandbox-reconciler';
import { DEFAULT_SANDBOX_LIMITS } from '../sandbox-runtime/container-spec';
import { createWarmPool } from '../sandbox-runtime/warm-pool';
import { QuotaWatchdog } from '../sandbox-runtime/quota-watchdog';
import { RepositoryCache } from '../sandbox-runtime/repository-cache';
import { detectQuotaMode } from '../sandbox-runtime/workspace';
import type { AppConfig } from '../config/env';
import { parseModelPrices } from '../config/model-prices';
import { peerTransport } from '../federation/client';
import type { IdentityHolder } from '../federation/identity';
import type { Logger } from '../platform/logger';
import type { WorkerMetrics } from '../platform/metrics';
import { repositoryPolicy } from '../platform/repository-policy';
import type { PrismaClient } from '../prisma/client';
import { sandboxHostQueue } from '../shared/task-queues';

/**
 * Everything the activities need, from the settings and the process's clients (the worker and the tests build them
 * alike).
 */
export async function activityDeps(
  config: AppConfig,
  {
    log,
    ...clients
  }: { prisma: PrismaClient; docker: Docker; identity: IdentityHolder; metrics: WorkerMetrics; log: Logger },
): Promise<ActivityDeps> {
  const peers = peerTransport(config);
  const quotaMode = config.WORKSPACE_QUOTA === 'auto' ? await detectQuotaMode() : config.WORKSPACE_QUOTA;
  const instance = instanceLabel(config.TEMPORAL_NAMESPACE, config.TASK_QUEUE);
  const warmPool =
    config.WARM_POOL_SIZE > 0
      ? createWarmPool({
          docker: clients.docker,
          size: config.WARM_POOL_SIZE,
          capacity: config.MAX_CONCURRENT_AGENTS,
          hostId: config.HOST_ID,
          instance,
          sandboxImage: config.SANDBOX_IMAGE,
          sandboxRuntime: config.SANDBOX_RUNTIME,
          slotsDir: path.join(config.DATA_DIR, 'warm-pool'),
          quotaMode,
          // A slot workspace has the quota an agent with default options gets.
          quotaMb: Math.min(DEFAULT_SANDBOX_LIMITS.diskMb, config.WORKSPACE_MAX_MB),
          onError: (error) => log.warn({ err: error }, 'warm pool: a sandbox could not be prepared; will try again'),
        })
      : null;
  const quotaWatch =
    quotaMode === 'watchdog'
      ? new QuotaWatchdog(clients.docker, (agentId, breach) => {
          clients.metrics.quotaBreaches.inc();
          log.warn(
            { agentId, usedMb: Math.round(breach.usedBytes / 1048576), quotaMb: breach.quotaBytes / 1048576 },
            'a workspace went past its quota: its sandbox was frozen',
          );
        })
      : null;
  return {
    quotaMode,
    quotaWatch,
    workspaceMaxMb: config.WORKSPACE_MAX_MB,
    warmPool,
    repositoryCache:
      config.REPOSITORY_CACHE === 'on' ? new RepositoryCache(path.join(config.DATA_DIR, 'repository-cache')) : null,
    ...clients,
    anthropic: createAnthropicClient(config.ANTHROPIC_API_KEY, config.ANTHROPIC_BASE_URL),
    modelPrices: parseModelPrices(config.MODEL_PRICES),
    sandboxImage: config.SANDBOX_IMAGE,
    sandboxRuntime: config.SANDBOX_RUNTIME,
    workspacesDir: path.join(config.DATA_DIR, 'workspaces'),
    hostQueue: sandboxHostQueue(config.HOST_ID),
    instance,
    maxConcurrentAgents: config.MAX_CONCURRENT_AGENTS,
    peers,
    repositories: repositoryPolicy(config, peers.policy),
    deliveryCredentials: {
      credentialsFile: config.GIT_CREDENTIALS_FILE ? path.resolve(config.GIT_CREDENTIALS_FILE) : null,
      sshKeyFile: config.GIT_SSH_KEY_FILE ? path.resolve(config.GIT_SSH_KEY_FILE) : null,
      sshKnownHostsFile: config.GIT_SSH_KNOWN_HOSTS_FILE ? path.resolve(config.GIT_SSH_KNOWN_HOSTS_FILE) : null,
    },
  };
}
