import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PrismaClient } from '../prisma/client';

/**
 * Prometheus metrics (prom-client), one registry per process role so that two instances in one test
 * process never mix their figures. The API serves its registry at /metrics; the worker serves its own
 * at WORKER_METRICS_PORT/metrics, followed by the Temporal SDK's runtime metrics.
 */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createApiMetrics(prisma: PrismaClient) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'orchestrator_api_' });
  const registers = [registry];
  return {
    registry,
    httpRequests: new Histogram({
      name: 'orchestrator_http_request_duration_seconds',
      help: 'API requests by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    spawns: new Counter({
      name: 'orchestrator_agent_spawns_total',
      help:
        'Spawn requests by agent type, where the agent runs (local or peer) and ' +
        'outcome (spawning, queued, existing, or the refusal code)',
      labelNames: ['agent_type', 'runs_on', 'outcome'] as const,
      registers,
    }),
    federationRejections: new Counter({
      name: 'orchestrator_federation_rejections_total',
      help: 'Signed federation messages refused, by kind (command, event) and reason code',
      labelNames: ['kind', 'reason'] as const,
      registers,
    }),
    agents: new Gauge({
      name: 'orchestrator_agents',
      help: "This instance's agents by state (read from PostgreSQL at each scrape)",
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const counts = await prisma.agent.groupBy({ by: ['state'], _count: { _all: true } });
        this.reset();
        for (const row of counts) this.set({ state: row.state }, row._count._all);
      },
    }),
    queueLength: new Gauge({
      name: 'orchestrator_agent_queue_length',
      help: 'Agents waiting for a sandbox slot',
      registers,
      async collect() {
        this.set(await prisma.agent.count({ where: { state: 'queued' } }));
      },
    }),
  };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;

export function createWorkerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'orchestrator_worker_' });
  const registers = [registry];
  return {
    registry,
    activities: new Histogram({
      name: 'orchestrator_activity_duration_seconds',
      help:
        'Activity attempts by activity type and outcome (completed, failed, ' +
        'cancelled, interrupted by the worker shutting down)',
      labelNames: ['activity', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    runsEnded: new Counter({
      name: 'orchestrator_agent_runs_ended_total',
      help: 'Agent runs that reached a final state, by agent type and state',
      labelNames: ['agent_type', 'state'] as const,
      registers,
    }),
    queueWait: new Histogram({
      name: 'orchestrator_agent_queue_wait_seconds',
      help: 'How long agents waited in state queued for a sandbox slot',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    }),
    sandboxStart: new Histogram({
      name: 'orchestrator_sandbox_start_seconds',
      help:
        'Launching an agent sandbox until its container runs (workspace, clone ' +
        'and container create+start), by runtime',
      labelNames: ['runtime'] as const,
      buckets: [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
      registers,
    }),
    killLatency: new Histogram({
      name: 'orchestrator_kill_seconds',
      help: 'From the kill signal reaching the workflow to the sandbox container removed',
      buckets: [0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30],
      registers,
    }),
    modelTokens: new Counter({
      name: 'orchestrator_model_tokens_total',
      help: 'Model tokens by model and kind (input, output, cache_creation, cache_read)',
      labelNames: ['model', 'kind'] as const,
      registers,
    }),
    modelCost: new Counter({
      name: 'orchestrator_model_cost_usd_total',
      help:
        'Estimated model cost in US dollars by model (from the price table; ' +
        'models without a price are not counted)',
      labelNames: ['model'] as const,
      registers,
    }),
    quotaBreaches: new Counter({
      name: 'orchestrator_quota_breaches_total',
      help: 'Sandboxes frozen by the quota watchdog because their workspace went past its disk quota',
      registers,
    }),
    contextClearings: new Counter({
      name: 'orchestrator_context_clearings_total',
      help: 'Times older tool results were cleared to keep a request within the context window',
      registers,
    }),
    modelRequests: new Histogram({
      name: 'orchestrator_model_request_seconds',
      help: 'Model requests by model and outcome (ok, retryable, rejected)',
      labelNames: ['model', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    toolCalls: new Counter({
      name: 'orchestrator_tool_calls_total',
      help: 'Tool calls by tool and exit status (0, nonzero, error, unknown)',
      labelNames: ['tool', 'exit_status'] as const,
      registers,
    }),
    callbackDeliveries: new Counter({
      name: 'orchestrator_session_callbacks_total',
      help: "Session callbacks POSTed to gateways' callback URLs, by outcome (delivered, failed)",
      labelNames: ['outcome'] as const,
      registers,
    }),
    eventDeliveries: new Counter({
      name: 'orchestrator_hub_event_deliveries_total',
      help: 'Signed agent.lifecycle events pushed to hubs, by outcome (delivered, refused, failed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/**
 * Serves GET /metrics on host:port: the registry's text, then what `more` adds (the Temporal SDK's
 * runtime metrics on the worker). Resolves once listening; the returned function closes it.
 */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  more?: () => Promise<string>,
): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'not_found', message: 'only GET /metrics is served here' } }));
      return;
    }
    void Promise.all([registry.metrics(), more ? more().catch(() => '') : Promise.resolve('')])
      .then(([own, extra]) =>
        response.writeHead(200, { 'content-type': registry.contentType }).end(extra ? `${own}\n${extra}` : own),
      )
      .catch((error: unknown) =>
        response
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
