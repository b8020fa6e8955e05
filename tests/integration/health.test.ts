import { mkdtemp } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp, type ApiDeps } from '../../api/app';
import { createIdentityHolder } from '../../federation/identity';
import { createDockerClient } from '../../platform/docker';
import { createLogger } from '../../platform/logger';
import type { DependencyName } from '../../platform/readiness';
import { createPrismaClient } from '../../prisma/client';
import { connectTemporalClient, createProbeConnection } from '../../temporal/connection';
import { request, type JsonResponse } from '../helpers/http';
import { testConfig } from '../helpers/instance';
import { freePort } from '../helpers/ports';

type Deps = Omit<ApiDeps, 'log' | 'namespace' | 'taskQueue' | 'maxConcurrentAgents' | 'identity' | 'publicUrl' | 'federationRateLimit'>;
interface Readiness {
  status: string;
  dependencies: Record<DependencyName, { status: string; error?: string }>;
}

/** Serves the API over loopback with the given real clients for one GET. */
async function getWith(deps: Deps, route: string): Promise<JsonResponse> {
  const identity = createIdentityHolder({ dataDir: await mkdtemp(path.join(os.tmpdir(), 'health-')), name: 'health', baseUrl: 'http://127.0.0.1:1' });
  const app = createApp({ ...deps, namespace: 'default', taskQueue: 'health-test', maxConcurrentAgents: 1, identity, publicUrl: 'http://127.0.0.1:1', federationRateLimit: 1, log: createLogger('test', 'silent') });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  try {
    const { port } = server.address() as AddressInfo;
    return await request(`http://127.0.0.1:${port}`, 'GET', route);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** Asserts a 503 in which exactly `down` is reported down and the others up. */
async function expectOnlyDown(deps: Deps, down: DependencyName): Promise<Readiness> {
  const response = await getWith(deps, '/health/ready');
  const body = response.body as Readiness;
  expect(response.status).toBe(503);
  expect(body.status).toBe('not_ready');
  for (const name of ['temporal', 'postgres', 'docker'] as const) {
    expect(body.dependencies[name].status).toBe(name === down ? 'down' : 'up');
  }
  return body;
}

describe('health endpoints against the real dependencies', () => {
  const config = testConfig();
  let healthy: Deps;

  beforeAll(async () => {
    healthy = {
      temporal: await connectTemporalClient(config),
      temporalProbe: createProbeConnection(config),
      prisma: createPrismaClient(config.DATABASE_URL),
      docker: createDockerClient(config.DOCKER_HOST),
    };
  });
  afterAll(async () => {
    await healthy.prisma.$disconnect();
    await healthy.temporal.connection.close();
    await healthy.temporalProbe.close();
  });

  it('reports liveness and all three dependencies up', async () => {
    const live = await getWith(healthy, '/health');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });

    const ready = await getWith(healthy, '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      dependencies: { temporal: { status: 'up' }, postgres: { status: 'up' }, docker: { status: 'up' } },
    });
  });

  it('answers 503 with docker down when no Docker engine answers', async () => {
    const body = await expectOnlyDown({ ...healthy, docker: createDockerClient(`tcp://127.0.0.1:${await freePort()}`) }, 'docker');
    expect(body.dependencies.docker.error).toMatch(/ECONNREFUSED/);
  });

  it('answers 503 with postgres down when PostgreSQL does not answer', async () => {
    const url = new URL(config.DATABASE_URL);
    url.port = String(await freePort());
    const prisma = createPrismaClient(url.toString());
    try {
      await expectOnlyDown({ ...healthy, prisma }, 'postgres');
    } finally {
      await prisma.$disconnect();
    }
  });

  it('answers 503 with temporal down when the Temporal server has stopped', async () => {
    // A second, private Temporal server that this test stops, so the shared one keeps serving others.
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: process.env.TEST_TEMPORAL_CLI ?? '' }, ip: '127.0.0.1' },
    });
    const temporalProbe = createProbeConnection(testConfig({ TEMPORAL_ADDRESS: env.address }));
    await env.teardown();
    try {
      await expectOnlyDown({ ...healthy, temporalProbe }, 'temporal');
    } finally {
      await temporalProbe.close();
    }
  });
});
