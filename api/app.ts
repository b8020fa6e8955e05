import type { Client, Connection } from '@temporalio/client';
import express, { type Express } from 'express';
import type { AppConfig } from '../config/env';
import { parseModelPrices } from '../config/model-prices';
import type { AgentEventFeed } from '../domain/agents/agent-event-feed';
import { createAgentService } from '../domain/agents/agent-service';
import { createFederatedAgentService } from '../domain/agents/federated-agent-service';
import { createPeerCommandHandler } from '../domain/agents/peer-commands';
import { createConnectionService } from '../domain/connections/connection-service';
import { peerTransport } from '../federation/client';
import type { IdentityHolder } from '../federation/identity';
import { repositoryPolicy } from '../platform/repository-policy';
import type { Logger } from '../platform/logger';
import { dockerFromWorkerReports } from '../platform/worker-hosts';
import type { PrismaClient } from '../prisma/client';
import { errorHandler, notFoundHandler } from './errors';
import { openApiDocument } from './openapi';
import './schemas';
import { metricsRouter, requestObservation } from './observability';
import { createApiMetrics } from '../platform/metrics';
import { agentRouter } from './routes/agents';
import { federatedAgentRouter } from './routes/federated-agents';
import { federationPublicRouter, federationRouter } from './routes/federation';
import { healthRouter } from './routes/health';
import { sandboxCheckRouter } from './routes/sandbox-checks';
import { sessionRouter } from './routes/sessions';
import { refuseDeclaredTooLarge } from './body-limit';
import { createSessionService } from '../domain/sessions/session-service';

/** The largest JSON body the API takes. */
const JSON_BODY_LIMIT_BYTES = 256 * 1024;

/** The settings the API reads (see config/env.ts for each one's meaning). */
export type ApiSettings = Pick<
  AppConfig,
  | 'TEMPORAL_NAMESPACE'
  | 'TASK_QUEUE'
  | 'MAX_CONCURRENT_AGENTS'
  | 'PUBLIC_URL'
  | 'FEDERATION_RATE_LIMIT'
  | 'FEDERATION_POLL_INTERVAL'
  | 'FEDERATION_PEER_TIMEOUT'
  | 'OUTBOUND_ALLOWED_NETWORKS'
  | 'REPOSITORY_SCHEMES'
  | 'REPOSITORY_HOSTS'
  | 'REPOSITORY_LOCAL_ROOTS'
  | 'WORKSPACE_MAX_MB'
  | 'MODEL_PRICES'
>;

export interface ApiDeps {
  temporal: Client;
  /** Used by /health/ready only (see createProbeConnection). */
  temporalProbe: Connection;
  prisma: PrismaClient;
  /** This instance's federation identity (keys on disk or from INSTANCE_PRIVATE_KEY). */
  identity: IdentityHolder;
  settings: ApiSettings;
  log: Logger;
  /** Wakes event streams when an agent's log grows (one LISTEN connection per process). */
  feed: AgentEventFeed;
}

/**
 * The HTTP API: builds the domain services from the dependencies and mounts the routes that map HTTP
 * to them. Every dependency is handed in so tests run it against the real services they started.
 */
export function createApp(deps: ApiDeps): Express {
  const { prisma, temporal, identity, settings, log, feed } = deps;
  const taskQueue = settings.TASK_QUEUE;
  // Incoming signatures must cover this instance's own authority (PUBLIC_URL), never the Host header.
  const authority = new URL(settings.PUBLIC_URL).host.toLowerCase();
  const rateLimitPerMinute = settings.FEDERATION_RATE_LIMIT;

  const peers = peerTransport(settings);
  const repositories = repositoryPolicy(settings, peers.policy);
  const agents = createAgentService({
    temporal,
    prisma,
    taskQueue,
    repositories,
    workspaceMaxMb: settings.WORKSPACE_MAX_MB,
    modelPrices: parseModelPrices(settings.MODEL_PRICES),
  });
  const federatedAgents = createFederatedAgentService({
    temporal,
    prisma,
    agents,
    identity,
    taskQueue,
    pollIntervalSeconds: settings.FEDERATION_POLL_INTERVAL,
    authority,
    rateLimitPerMinute,
    repositories,
    log,
  });
  const connections = createConnectionService({
    prisma,
    temporal,
    taskQueue,
    identity,
    peers,
    authority,
    log,
    onStatusChanged: (connectionId, status) => federatedAgents.notifyConnectionStatus(connectionId, status),
  });
  const peerCommands = createPeerCommandHandler({ prisma, identity, agents, authority, rateLimitPerMinute, log });
  const metrics = createApiMetrics(prisma);
  const sessions = createSessionService({
    prisma,
    temporal,
    agents,
    federatedAgents,
    taskQueue,
    outbound: peers.policy,
  });
  const readiness = {
    temporal: deps.temporalProbe,
    prisma,
    docker: () => dockerFromWorkerReports(prisma, taskQueue),
    namespace: settings.TEMPORAL_NAMESPACE,
  };
  const federation = { prisma, identity, connections, peerCommands, federatedAgents, metrics };

  const app = express();
  app.disable('x-powered-by');
  app.use(requestObservation(log, metrics));
  app.use(metricsRouter(metrics));
  // Signed federation endpoints read the raw bytes, so they come before the JSON parser.
  app.use(federationPublicRouter(federation));
  app.use(refuseDeclaredTooLarge(JSON_BODY_LIMIT_BYTES));
  app.use(express.json({ limit: JSON_BODY_LIMIT_BYTES, strict: true }));

  // The API has no Docker socket: the worker hosts report whether their engines answer.
  app.use(healthRouter(readiness));
  app.use(sessionRouter({ prisma, feed, sessions, identity, metrics, readiness }));
  app.use(federatedAgentRouter({ prisma, federatedAgents, metrics }));
  app.use(federationRouter(federation));
  app.use(agentRouter({ prisma, feed, agents, metrics }));
  app.use(sandboxCheckRouter({ temporal, prisma, taskQueue }));
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
