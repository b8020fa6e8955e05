import { once } from 'node:events';
import { loadConfig } from '../config/env';
import { createLogger } from '../platform/logger';
import { runMain } from '../platform/main';
import { preflight } from '../platform/preflight';
import { createPrismaClient } from '../prisma/client';
import { connectTemporalClient, createProbeConnection } from '../temporal/connection';
import { createIdentityHolder, identitySettings } from '../federation/identity';
import { createApp } from './app';
import { createApiServer } from './http-server';
import { AGENT_EVENTS_CHANNEL, AGENT_PROGRESS_CHANNEL, AgentEventFeed } from '../domain/agents/agent-event-feed';
import { startPgListener } from '../platform/pg-listener';

/** The API process: serves until SIGINT/SIGTERM, then closes connections and exits. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('api', config.LOG_LEVEL);
  await preflight(config, { docker: false });

  const temporal = await connectTemporalClient(config);
  const prisma = createPrismaClient(config.DATABASE_URL);
  const temporalProbe = createProbeConnection(config);
  const identity = createIdentityHolder(identitySettings(config));
  // One LISTEN connection serves every event stream of this process.
  const listener = startPgListener(config.DATABASE_URL, [AGENT_EVENTS_CHANNEL, AGENT_PROGRESS_CHANNEL], log);
  const feed = new AgentEventFeed(listener, prisma);
  const app = createApp({ temporal, temporalProbe, prisma, identity, settings: config, log, feed });
  const server = createApiServer(app).listen(config.API_PORT, config.API_HOST);
  await once(server, 'listening');
  log.info({ url: `http://${config.API_HOST}:${config.API_PORT}` }, 'api listening');

  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  log.info('api stopping');
  feed.close(); // open event streams end, so the server can close
  server.closeIdleConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await listener.close();
  await Promise.allSettled([prisma.$disconnect(), temporal.connection.close(), temporalProbe.close()]);
}

runMain('api', main);
