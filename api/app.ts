import type { Client, Connection } from '@temporalio/client';
import type Docker from 'dockerode';
import express, { type Express } from 'express';
import type { Logger } from '../platform/logger';
import type { PrismaClient } from '../prisma/client';
import { errorHandler, notFoundHandler } from './errors';
import { openApiDocument } from './openapi';
import type { IdentityHolder } from '../federation/identity';
import { createAgentService } from './agent-service';
import { agentRouter } from './routes/agents';
import { federationPublicRouter, federationRouter } from './routes/federation';
import { healthRouter } from './routes/health';
import { sandboxCheckRouter } from './routes/sandbox-checks';

export interface ApiDeps {
  temporal: Client;
  /** Used by /health/ready only (see createProbeConnection). */
  temporalProbe: Connection;
  prisma: PrismaClient;
  docker: Docker;
  namespace: string;
  /** Where workflows are started (the TASK_QUEUE setting). */
  taskQueue: string;
  /** MAX_CONCURRENT_AGENTS, for answering spawns as queued. */
  maxConcurrentAgents: number;
  /** This instance's federation identity (keys on disk or from INSTANCE_PRIVATE_KEY). */
  identity: IdentityHolder;
  /** PUBLIC_URL: incoming signatures must cover its authority. */
  publicUrl: string;
  /** FEDERATION_RATE_LIMIT: commands per connection per minute. */
  federationRateLimit: number;
  log: Logger;
}

/** The HTTP API; every dependency is handed in so tests run it against the real services they started. */
export function createApp(deps: ApiDeps): Express {
  const app = express();
  const agents = createAgentService({ temporal: deps.temporal, prisma: deps.prisma, taskQueue: deps.taskQueue, maxConcurrentAgents: deps.maxConcurrentAgents });
  const federation = { prisma: deps.prisma, identity: deps.identity, agents, authority: new URL(deps.publicUrl).host.toLowerCase(), rateLimitPerMinute: deps.federationRateLimit, log: deps.log };
  app.disable('x-powered-by');
  // Signed federation endpoints read the raw bytes, so they come before the JSON parser.
  app.use(federationPublicRouter(federation));
  app.use(express.json({ limit: '256kb', strict: true }));

  app.use(healthRouter({ temporal: deps.temporalProbe, prisma: deps.prisma, docker: deps.docker, namespace: deps.namespace }));
  app.use(federationRouter(federation));
  app.use(agentRouter({ temporal: deps.temporal, prisma: deps.prisma, taskQueue: deps.taskQueue, maxConcurrentAgents: deps.maxConcurrentAgents }));
  app.use(sandboxCheckRouter({ temporal: deps.temporal, prisma: deps.prisma, taskQueue: deps.taskQueue }));
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  app.use(notFoundHandler);
  app.use(errorHandler(deps.log));
  return app;
}
