import type { Client, Connection } from '@temporalio/client';
import type Docker from 'dockerode';
import express, { type Express } from 'express';
import type { Logger } from '../platform/logger';
import type { PrismaClient } from '../prisma/client';
import { errorHandler, notFoundHandler } from './errors';
import { openApiDocument } from './openapi';
import { agentRouter } from './routes/agents';
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
  log: Logger;
}

/** The HTTP API; every dependency is handed in so tests run it against the real services they started. */
export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '256kb', strict: true }));

  app.use(healthRouter({ temporal: deps.temporalProbe, prisma: deps.prisma, docker: deps.docker, namespace: deps.namespace }));
  app.use(agentRouter({ temporal: deps.temporal, prisma: deps.prisma, taskQueue: deps.taskQueue, maxConcurrentAgents: deps.maxConcurrentAgents }));
  app.use(sandboxCheckRouter({ temporal: deps.temporal, prisma: deps.prisma, taskQueue: deps.taskQueue }));
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  app.use(notFoundHandler);
  app.use(errorHandler(deps.log));
  return app;
}
