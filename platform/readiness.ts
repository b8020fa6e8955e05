import type { Connection } from '@temporalio/client';
import type { PrismaClient } from '../prisma/client';

export type DependencyName = 'temporal' | 'postgres' | 'docker';

export interface DependencyStatus {
  status: 'up' | 'down';
  latencyMs: number;
  error?: string;
}

export type Readiness = Record<DependencyName, DependencyStatus>;

export interface ReadinessTargets {
  temporal: Pick<Connection, 'workflowService' | 'withDeadline'>;
  prisma: Pick<PrismaClient, '$queryRaw'>;
  /** Resolves when the Docker engine answers: a ping where there is a socket, the worker hosts' reports in the API. */
  docker: () => Promise<unknown>;
  namespace: string;
}

const CHECK_TIMEOUT_MS = 3_000;

/** Runs one check bounded to CHECK_TIMEOUT_MS: up with its latency, or down with the first line of why. */
export async function probe(check: () => Promise<unknown>): Promise<DependencyStatus> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
    });
    await Promise.race([check(), timeout]);
    return { status: 'up', latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? error.name) : String(error);
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: message };
  } finally {
    clearTimeout(timer);
  }
}

/** Checks the three dependencies concurrently; each check is bounded so readiness never hangs. */
export async function checkReadiness(targets: ReadinessTargets): Promise<Readiness> {
  const [temporal, postgres, docker] = await Promise.all([
    probe(() =>
      targets.temporal.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () =>
        targets.temporal.workflowService.describeNamespace({ namespace: targets.namespace }),
      ),
    ),
    probe(() => targets.prisma.$queryRaw`SELECT 1`),
    probe(targets.docker),
  ]);
  return { temporal, postgres, docker };
}

export function isReady(readiness: Readiness): boolean {
  return Object.values(readiness).every((dependency) => dependency.status === 'up');
}
