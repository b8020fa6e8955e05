import type { Request, RequestHandler, Response, Router } from 'express';
import express from 'express';
import { pinoHttp } from 'pino-http';
import { DomainError } from '../domain/errors';
import type { Logger } from '../platform/logger';
import type { ApiMetrics } from '../platform/metrics';

/** The route pattern a request matched (`/agents/:agentId/status`), so metrics never get one label per agent. */
function routeOf(req: Request): string {
  const { route } = req as { route?: { path?: unknown } };
  return typeof route?.path === 'string' ? `${req.baseUrl}${route.path}` : 'unmatched';
}

/**
 * One JSON log line per request (pino-http: method, URL, status, latency, and the agentId or
 * messageId a handler put in res.locals) and one observation of
 * orchestrator_http_request_duration_seconds. Authorization and signature headers are redacted by the logger.
 */
export function requestObservation(log: Logger, metrics: ApiMetrics): RequestHandler[] {
  const logRequests = pinoHttp({
    logger: log,
    // A refused request is the caller's mistake, not the server's: info; a 5xx is an error.
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : 'info'),
    customProps: (_req, res) => correlation(res as Response),
    // The default serializers keep the id, method, URL and headers (redacted); the body never.
    autoLogging: { ignore: (req) => req.url === '/metrics' || req.url?.startsWith('/health') === true },
  });
  const timeRequests: RequestHandler = (req, res, next) => {
    const stop = metrics.httpRequests.startTimer();
    res.on('finish', () => stop({ method: req.method, route: routeOf(req), status: String(res.statusCode) }));
    next();
  };
  return [timeRequests, logRequests];
}

/** What a handler learned that ties the request to an agent or a federation message. */
function correlation(res: Response): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const key of ['agentId', 'messageId'] as const) {
    const value: unknown = res.locals[key];
    if (typeof value === 'string') ids[key] = value;
  }
  return ids;
}

/** Names the agent a request is about, for its log line. */
export function noteAgent(res: Response, agentId: string): void {
  res.locals.agentId = agentId;
}

/** Counts a spawn by agent type, where it runs and its outcome (the state it got, existing, or the refusal code). */
export async function countSpawn<R>(
  metrics: ApiMetrics,
  labels: { agentType: string; runsOn: 'local' | 'peer' },
  spawn: () => Promise<R>,
  outcomeOf: (result: R) => string,
): Promise<R> {
  const count = (outcome: string): void =>
    metrics.spawns.inc({ agent_type: labels.agentType, runs_on: labels.runsOn, outcome });
  try {
    const result = await spawn();
    count(outcomeOf(result));
    return result;
  } catch (error) {
    count(error instanceof DomainError ? error.code : 'error');
    throw error;
  }
}

/** GET /metrics: this API's Prometheus metrics (the worker serves its own at WORKER_METRICS_ADDRESS). */
export function metricsRouter(metrics: ApiMetrics): Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', metrics.registry.contentType);
    res.end(await metrics.registry.metrics());
  });
  return router;
}
