import type Docker from 'dockerode';
import { redactUrl, type AppConfig } from '../config/env';
import { createPrismaClient } from '../prisma/client';
import { createProbeConnection } from '../temporal/connection';
import { createDockerClient } from './docker';
import { checkReadiness, type DependencyName } from './readiness';

/** A startup failure whose message is one line meant for the operator, never a stack trace. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

function describe(config: AppConfig, dependency: DependencyName): string {
  switch (dependency) {
    case 'temporal':
      return `Temporal server at ${config.TEMPORAL_ADDRESS} (namespace ${config.TEMPORAL_NAMESPACE})`;
    case 'postgres':
      return `PostgreSQL at ${redactUrl(config.DATABASE_URL)}`;
    case 'docker':
      return `Docker engine at ${config.DOCKER_HOST}`;
  }
}

/** Sandboxes under gVisor need the Docker engine to know the runsc runtime; without it every launch would fail. */
export async function requireSandboxRuntime(docker: Pick<Docker, 'info'>, runtime: 'runc' | 'runsc'): Promise<void> {
  if (runtime === 'runc') return;
  const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
  if (!info.Runtimes || !(runtime in info.Runtimes)) {
    throw new StartupError(
      `SANDBOX_RUNTIME=${runtime}, but the Docker engine has no ${runtime} ` +
        `runtime (npm start registers Debian's runsc; elsewhere add it to the ` +
        `engine's daemon.json with the runtime argument --network=none)`,
    );
  }
}

/**
 * Checks that Temporal, PostgreSQL and (where this process uses it) Docker answer before a process
 * starts serving, so a misconfigured start ends with one line per unreachable dependency instead of a
 * later crash. The API has no Docker socket of its own (it reads the workers' reports).
 */
export async function preflight(config: AppConfig, { docker: checkDocker = true } = {}): Promise<void> {
  const temporal = createProbeConnection(config);
  const prisma = createPrismaClient(config.DATABASE_URL);
  try {
    const readiness = await checkReadiness({
      temporal,
      prisma,
      docker: checkDocker ? () => createDockerClient(config.DOCKER_HOST).ping() : () => Promise.resolve(),
      namespace: config.TEMPORAL_NAMESPACE,
    });
    const problems = (Object.keys(readiness) as DependencyName[])
      .filter((name) => readiness[name].status === 'down')
      .map((name) => `${describe(config, name)} is unreachable (${readiness[name].error ?? 'unknown error'})`);
    if (problems.length > 0) throw new StartupError(problems.join('\n'));
  } finally {
    await Promise.allSettled([prisma.$disconnect(), temporal.close()]);
  }
}
