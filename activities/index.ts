import type Anthropic from '@anthropic-ai/sdk';
import type Docker from 'dockerode';
import type { PeerTransport } from '../federation/client';
import type { IdentityHolder } from '../federation/identity';
import type { RepositoryPolicy } from '../platform/repository-policy';
import type { WorkerMetrics } from '../platform/metrics';
import type { PrismaClient } from '../prisma/client';
import { createAdmissionActivities } from './admission';
import { createAgentRecordActivities } from './agent-records';
import { createAgentSandboxActivities } from './sandbox';
import { createFederationCommandActivities } from './federation-commands';
import { createHubEventActivities } from './hub-events';
import { createModelActivities } from './model';
import { InFlightModelCalls } from '../model-client/calls-in-flight';
import type { ModelPriceTable } from '../config/model-prices';
import { createSandboxCheckRecordActivities } from './sandbox-check-records';
import { createSandboxProbeActivities } from './sandbox-check-probe';
import { createRetentionActivities } from './retention';
import { createSessionCallbackActivities } from './session-callbacks';
import type { SandboxRuntime } from '../sandbox-runtime/container-spec';
import type { QuotaWatchdog } from '../sandbox-runtime/quota-watchdog';
import type { RepositoryCache } from '../sandbox-runtime/repository-cache';
import type { DeliveryCredentials } from '../sandbox-runtime/result-delivery';
import { createDeliveryActivities } from './delivery';
import type { WarmPool } from '../sandbox-runtime/warm-pool';
import type { QuotaMode } from '../sandbox-runtime/workspace';

export interface ActivityDeps {
  prisma: PrismaClient;
  docker: Docker;
  anthropic: Anthropic | null;
  sandboxImage: string;
  /** The OCI runtime sandboxes run under (SANDBOX_RUNTIME). */
  sandboxRuntime: SandboxRuntime;
  workspacesDir: string;
  /** This host's own task queue (sandbox activities run where their container is). */
  hostQueue: string;
  /** `<namespace>/<task queue>`: labels this instance's containers for its reconciler. */
  instance: string;
  /** Agent sandboxes this host runs at once (MAX_CONCURRENT_AGENTS). */
  maxConcurrentAgents: number;
  /** This instance's federation identity: signs commands to peers and events to hubs. */
  identity: IdentityHolder;
  /** How peers are reached: the outbound address policy and a timeout per request. */
  peers: PeerTransport;
  /** Where agents' repositories may be cloned from. */
  repositories: RepositoryPolicy;
  /** How workspace disk quotas are enforced on this host. */
  quotaMode: QuotaMode;
  /** The largest workspace quota this instance grants. */
  workspaceMaxMb: number;
  /** This worker's Prometheus metrics. */
  metrics: WorkerMetrics;
  /** Where quotas are only watched: the watch over this host's live sandboxes, or null (loop mode). */
  quotaWatch: QuotaWatchdog | null;
  /** Sandboxes started ahead of demand on this host (WARM_POOL_SIZE > 0), or null. */
  warmPool: WarmPool | null;
  /** The mirrors of the repositories this host clones (REPOSITORY_CACHE=on), or null. */
  repositoryCache: RepositoryCache | null;
  /** Prices and context windows per model (MODEL_PRICES merged over the defaults). */
  modelPrices: ModelPriceTable;
  /** The operator's credentials for pushing results (GIT_CREDENTIALS_FILE, GIT_SSH_KEY_FILE, ...). */
  deliveryCredentials: DeliveryCredentials;
}

/**
 * Builds every activity from its dependencies. Workflows import only the type of this factory's
 * result, so tests can hand in other dependencies without touching workflow code.
 */
export function createActivities(deps: ActivityDeps) {
  const modelCalls = new InFlightModelCalls(); // the model and the kill's sandbox removal share it
  return {
    ...createSandboxCheckRecordActivities(deps.prisma),
    ...createSandboxProbeActivities(deps),
    ...createAdmissionActivities(),
    ...createAgentRecordActivities(deps.prisma, deps.metrics),
    ...createModelActivities({ ...deps, modelCalls }),
    ...createAgentSandboxActivities({ ...deps, modelCalls }),
    ...createFederationCommandActivities(deps),
    ...createHubEventActivities(deps),
    ...createRetentionActivities(deps),
    ...createDeliveryActivities(deps),
    ...createSessionCallbackActivities({
      prisma: deps.prisma,
      identity: deps.identity,
      outbound: deps.peers.policy,
      metrics: deps.metrics,
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
