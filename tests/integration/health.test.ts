import { mkdtemp } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp, type ApiDeps } from '../../api/app';
import { AGENT_EVENTS_CHANNEL, AGENT_PROGRESS_CHANNEL, AgentEventFeed } from '../../domain/agents/agent-event-feed';
import { startPgListener, type PgListener } from '../../platform/pg-listener';
import { issueAdminToken, issueApiToken } from '../../api/auth';
import { createIdentityHolder } from '../../federation/identity';
import { createDockerClient } from '../../platform/docker';
import { createLogger } from '../../platform/logger';
import type { DependencyName } from '../../platform/readiness';
import { reportWorkerHost } from '../../platform/worker-hosts';
import { createPrismaClient, type PrismaClient } from '../../prisma/client';
import { connectTemporalClient, createProbeConnection } from '../../temporal/connection';
import { createTestDatabase } from '../helpers/databases';
import { request, type JsonResponse } from '../helpers/http';
import { testConfig } from '../helpers/instance';
import { freePort } from '../helpers/ports';

type Deps = Omit<ApiDeps, 'log' | 'identity' | 'settings'>;
interface Readiness {
  status: string;
  dependencies: Record<DependencyName, { status: string; latencyMs?: number; error?: string }>;
}
const TASK_QUEUE = 'health-test';

/** Serves the API over loopback with the given real clients for one GET. */
async function getWith(deps: Deps, route: string, token?: string): Promise<JsonResponse> {
  const identity = createIdentityHolder({
    dataDir: await mkdtemp(path.join(os.tmpdir(), 'health-')),
    name: 'health',
    baseUrl: 'http://127.0.0.1:1',
  });
  const settings = {
    ...testConfig(),
    TEMPORAL_NAMESPACE: 'default',
    TASK_QUEUE,
    PUBLIC_URL: 'http://127.0.0.1:1',
  };
  const app = createApp({ ...deps, identity, settings, log: createLogger('test', 'silent') });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  try {
    const { port } = server.address() as AddressInfo;
    return await request(
      `http://127.0.0.1:${port}`,
      'GET',
      route,
      token ? { headers: { authorization: `Bearer ${token}` } } : {},
    );
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** Asserts a 503 in which exactly the `down` dependencies are reported down and the others up. */
async function expectDown(deps: Deps, down: DependencyName[], token?: string): Promise<Readiness> {
  const response = await getWith(deps, '/health/ready', token);
  const body = response.body as Readiness;
  expect(response.status).toBe(503);
  expect(body.status).toBe('not_ready');
  for (const name of ['temporal', 'postgres', 'docker'] as const) {
    expect([name, body.dependencies[name].status]).toEqual([name, down.includes(name) ? 'down' : 'up']);
  }
  return body;
}

describe('health endpoints against the real dependencies', () => {
  const config = testConfig();
  let healthy: Deps;
  let prisma: PrismaClient;
  let listener: PgListener;
  let adminToken: string;
  let workspaceToken: string;
  const report = (docker = createDockerClient(config.DOCKER_HOST)) =>
    reportWorkerHost(prisma, docker, { hostId: 'health-host', taskQueue: TASK_QUEUE });

  beforeAll(async () => {
    // A database of its own: readiness reads the worker hosts' reports there.
    const databaseUrl = await createTestDatabase();
    prisma = createPrismaClient(databaseUrl);
    listener = startPgListener(
      databaseUrl,
      [AGENT_EVENTS_CHANNEL, AGENT_PROGRESS_CHANNEL],
      createLogger('test', 'silent'),
    );
    const feed = new AgentEventFeed(listener, prisma);
    healthy = {
      temporal: await connectTemporalClient(config),
      temporalProbe: createProbeConnection(config),
      prisma,
      feed,
    };
    adminToken = (await issueAdminToken(prisma)).token;
    workspaceToken = (await issueApiToken(prisma, `health-${Date.now()}`)).token;
    await report();
  });
  afterAll(async () => {
    await prisma.$disconnect();
    await healthy.temporal.connection.close();
    await healthy.temporalProbe.close();
    healthy.feed.close();
    await listener.close();
  });

  it('reports liveness and all three dependencies up', async () => {
    const live = await getWith(healthy, '/health');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });

    const ready = await getWith(healthy, '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ready',
      dependencies: { temporal: { status: 'up' }, postgres: { status: 'up' }, docker: { status: 'up' } },
    });
    const detailed = (await getWith(healthy, '/health/ready', adminToken)).body as Readiness;
    expect(detailed.dependencies.docker.latencyMs).toEqual(expect.any(Number));
  });

  it(
    'answers 503 with docker down when the worker hosts report no Docker ' +
      'engine, and tells why only to an administrator',
    async () => {
      await report(createDockerClient(`tcp://127.0.0.1:${await freePort()}`));
      try {
        const anonymous = await expectDown(healthy, ['docker']);
        expect(anonymous.dependencies.docker).toEqual({ status: 'down' });
        const workspace = await expectDown(healthy, ['docker'], workspaceToken);
        expect(workspace.dependencies.docker).toEqual({ status: 'down' });
        const admin = await expectDown(healthy, ['docker'], adminToken);
        expect(admin.dependencies.docker.error).toMatch(/health-host: .*ECONNREFUSED/);
      } finally {
        await report();
      }
    },
  );

  it('answers 503 with docker down when no worker host has reported lately', async () => {
    await prisma.workerHost.update({
      where: { hostId: 'health-host' },
      data: { reportedAt: new Date(Date.now() - 60_000) },
    });
    try {
      const admin = await expectDown(healthy, ['docker'], adminToken);
      expect(admin.dependencies.docker.error).toMatch(/no worker host reported in the last 30 s/);
    } finally {
      await report();
    }
  });

  it(
    'answers 503 with postgres down when PostgreSQL does not answer (and ' +
      'docker, whose reports are kept there, unknown)',
    async () => {
      const url = new URL(config.DATABASE_URL);
      url.port = String(await freePort());
      const unreachable = createPrismaClient(url.toString());
      try {
        const body = await expectDown({ ...healthy, prisma: unreachable }, ['postgres', 'docker'], adminToken);
        // The token cannot be checked without the database.
        expect(body.dependencies.postgres).toEqual({ status: 'down' });
      } finally {
        await unreachable.$disconnect();
      }
    },
  );

  it('answers 503 with temporal down when the Temporal server has stopped', async () => {
    // A second, private Temporal server that this test stops, so the shared one keeps serving others.
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: process.env.TEST_TEMPORAL_CLI ?? '' }, ip: '127.0.0.1' },
    });
    const temporalProbe = createProbeConnection(testConfig({ TEMPORAL_ADDRESS: env.address }));
    await env.teardown();
    try {
      const body = await expectDown({ ...healthy, temporalProbe }, ['temporal'], adminToken);
      expect(body.dependencies.temporal.error).toEqual(expect.any(String));
    } finally {
      await temporalProbe.close();
    }
  });
});
