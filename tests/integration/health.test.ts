import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp, type ApiDeps } from '../../api/app';
import { createDockerClient } from '../../platform/docker';
import { createLogger } from '../../platform/logger';
import { createPrismaClient } from '../../prisma/client';
import { connectTemporalClient, createProbeConnection } from '../../temporal/connection';
import { request } from '../helpers/http';
import { testConfig } from '../helpers/instance';
import { freePort } from '../helpers/ports';

type Readiness = { status: string; dependencies: Record<'temporal' | 'postgres' | 'docker', { status: string; error?: string }> };

/** Serves the API over loopback with the given real clients and returns GET /health/ready. */
async function readinessWith(deps: Omit<ApiDeps, 'log' | 'namespace'>): Promise<{ status: number; body: Readiness }> {
  const app = createApp({ ...deps, namespace: 'default', log: createLogger('test', 'silent') });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  try {
    const { port } = server.address() as AddressInfo;
    const response = await request(`http://127.0.0.1:${port}`, 'GET', '/health/ready');
    return { status: response.status, body: response.body as Readiness };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

describe('health endpoints against the real dependencies', () => {
  const config = testConfig();
  let healthy: Omit<ApiDeps, 'log' | 'namespace'>;

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
    const app = createApp({ ...healthy, namespace: 'default', log: createLogger('test', 'silent') });
    const server: Server = await new Promise((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    const { port } = server.address() as AddressInfo;
    const live = await request(`http://127.0.0.1:${port}`, 'GET', '/health');
    server.close();
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });

    const ready = await readinessWith(healthy);
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    for (const name of ['temporal', 'postgres', 'docker'] as const) expect(ready.body.dependencies[name].status).toBe('up');
  });

  it('answers 503 with docker down when no Docker engine answers', async () => {
    const ready = await readinessWith({ ...healthy, docker: createDockerClient(`tcp://127.0.0.1:${await freePort()}`) });
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('not_ready');
    expect(ready.body.dependencies.docker.status).toBe('down');
    expect(ready.body.dependencies.docker.error).toMatch(/ECONNREFUSED/);
    expect(ready.body.dependencies.temporal.status).toBe('up');
    expect(ready.body.dependencies.postgres.status).toBe('up');
  });

  it('answers 503 with postgres down when PostgreSQL does not answer', async () => {
    const url = new URL(config.DATABASE_URL);
    url.port = String(await freePort());
    const prisma = createPrismaClient(url.toString());
    try {
      const ready = await readinessWith({ ...healthy, prisma });
      expect(ready.status).toBe(503);
      expect(ready.body.dependencies.postgres.status).toBe('down');
      expect(ready.body.dependencies.temporal.status).toBe('up');
      expect(ready.body.dependencies.docker.status).toBe('up');
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
      const ready = await readinessWith({ ...healthy, temporalProbe });
      expect(ready.status).toBe(503);
      expect(ready.body.dependencies.temporal.status).toBe('down');
      expect(ready.body.dependencies.postgres.status).toBe('up');
      expect(ready.body.dependencies.docker.status).toBe('up');
    } finally {
      await temporalProbe.close();
    }
  });
});
