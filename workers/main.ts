import { Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig } from '../config/env';
import { createDockerClient } from '../platform/docker';
import { createLogger, temporalLogger } from '../platform/logger';
import { createWorkerMetrics, serveMetrics } from '../platform/metrics';
import { runMain } from '../platform/main';
import { preflight, requireSandboxRuntime } from '../platform/preflight';
import { startWorkerHostReports } from '../platform/worker-hosts';
import { createPrismaClient } from '../prisma/client';
import { connectTemporalClient, connectWorkerConnection } from '../temporal/connection';
import { createInstanceWorkers } from '../temporal/instance-workers';
import { reconcileSandboxes } from './jobs/sandbox-reconciler';
import { reconcileAgentRows } from './jobs/agent-reconciler';
import { watchLiveSandboxes } from '../activities/sandbox';
import { createIdentityHolder, identitySettings } from '../federation/identity';
import { activityDeps } from './activity-deps';
import { ensureRetentionSchedule } from './jobs/retention-schedule';
import { SESSION_EVENTS_CHANNEL } from '../domain/agents/agent-event-feed';
import { startCallbackWakeups } from '../domain/sessions/callback-wakeups';
import { startPgListener } from '../platform/pg-listener';
import { observeActivities } from './observed-activities';

const RECONCILE_INTERVAL_MS = 5 * 60 * 1000;
/** Rows whose workflow is gone get their terminal state within a minute. */
const RECONCILE_ROWS_INTERVAL_MS = 30 * 1000;

/**
 * The worker process: one Temporal worker on the orchestrator queue (workflows and host-independent
 * activities) and one on this host's sandbox queue, sharing one connection, until SIGINT/SIGTERM.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker', config.LOG_LEVEL);
  // The SDK logs through pino too, and exports its runtime metrics for the worker's /metrics.
  Runtime.install({
    logger: temporalLogger(log),
    telemetryOptions: { metrics: { prometheus: { bindAddress: config.TEMPORAL_METRICS_ADDRESS } } },
  });
  await preflight(config);
  const docker = createDockerClient(config.DOCKER_HOST);
  await requireSandboxRuntime(docker, config.SANDBOX_RUNTIME);
  if (!config.ANTHROPIC_API_KEY)
    log.warn('ANTHROPIC_API_KEY is not set: agent runs will fail at their first model call');

  const prisma = createPrismaClient(config.DATABASE_URL);
  const connection = await connectWorkerConnection(config);
  const temporal = await connectTemporalClient(config);
  // The API has no Docker socket: it learns from these reports whether this host's engine answers; the admission
  // workflow learns the host's capacity.
  const stopReports = startWorkerHostReports(
    prisma,
    docker,
    temporal,
    { hostId: config.HOST_ID, taskQueue: config.TASK_QUEUE, capacity: config.MAX_CONCURRENT_AGENTS },
    (error) => {
      log.warn({ err: error }, 'reporting this host failed; will retry');
    },
  );
  const identity = createIdentityHolder(identitySettings(config));
  const metrics = createWorkerMetrics();
  const [metricsHost = '127.0.0.1', metricsPort = '9464'] = config.WORKER_METRICS_ADDRESS.split(':');
  const metricsServer = await serveMetrics(metrics.registry, metricsHost, Number(metricsPort), async () => {
    const response = await fetch(`http://${config.TEMPORAL_METRICS_ADDRESS}/metrics`);
    return await response.text();
  });
  log.info({ metrics: `http://${config.WORKER_METRICS_ADDRESS}/metrics` }, 'serving metrics');
  const deps = await activityDeps(config, { prisma, docker, identity, metrics, log });
  // One LISTEN connection: an appended event of a session with a callback wakes its delivery at once.
  const listener = startPgListener(config.DATABASE_URL, [SESSION_EVENTS_CHANNEL], log);
  const wakeups = startCallbackWakeups(listener, temporal, prisma, log);
  const activities = createActivities(deps);
  await watchLiveSandboxes(deps);
  // Old records and workspaces are pruned by a Temporal Schedule (the Web UI lists it); a failure here is retried by
  // the next start.
  await ensureRetentionSchedule(temporal, config).catch((error: unknown) =>
    log.warn({ err: error }, 'could not create or update the retention schedule'),
  );
  const interceptors = { activity: [observeActivities(log, metrics)] };
  log.info(
    { quotaMode: deps.quotaMode },
    deps.quotaMode === 'loop'
      ? 'workspace quotas: an ext4 image per workspace'
      : 'workspace quotas: watched while tools run (no loop devices for this worker)',
  );
  const workers = await createInstanceWorkers(config, connection, temporal, log, {
    activities,
    interceptors,
    hostQueue: deps.hostQueue,
    workflows: { workflowsPath: require.resolve('../workflows') },
  });
  log.info({ taskQueues: [config.TASK_QUEUE, deps.hostQueue], namespace: config.TEMPORAL_NAMESPACE }, 'worker started');

  // Orphaned sandboxes (their workflow ended without teardown) are removed now and every few minutes.
  const reconcile = async (): Promise<void> => {
    try {
      const { removed } = await reconcileSandboxes(docker, temporal, deps.instance, deps.workspacesDir, deps.warmPool);
      if (removed.length > 0) log.info({ removed }, 'removed orphaned sandboxes');
    } catch (error) {
      log.warn({ err: error }, 'sandbox reconciliation failed; will retry');
    }
  };
  await reconcile();
  // Filled once the reconciler has removed the warm sandboxes an earlier worker process left.
  deps.warmPool?.start();
  const reconciler = setInterval(() => void reconcile(), RECONCILE_INTERVAL_MS);
  const reconcileRows = async (): Promise<void> => {
    try {
      const reconciled = await reconcileAgentRows(prisma, temporal, metrics);
      if (reconciled.length > 0)
        log.warn({ reconciled }, 'agents whose workflow had ended without recording it got their terminal state');
    } catch (error) {
      log.warn({ err: error }, 'agent row reconciliation failed; will retry');
    }
  };
  const rowReconciler = setInterval(() => void reconcileRows(), RECONCILE_ROWS_INTERVAL_MS);
  try {
    // Both resolve after SIGINT/SIGTERM, which the SDK handles by draining.
    await workers.run();
  } finally {
    clearInterval(reconciler);
    clearInterval(rowReconciler);
    stopReports();
    wakeups.stop();
    await listener.close();
    deps.quotaWatch?.stop();
    await deps.warmPool?.stop();
    await Promise.allSettled([
      metricsServer.close(),
      prisma.$disconnect(),
      connection.close(),
      temporal.connection.close(),
    ]);
    log.info('worker stopped');
  }
}

runMain('worker', main);
