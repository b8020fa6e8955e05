import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import { HOST_REPORT_INTERVAL_MS } from '../workflows/admission/contract';
import { probe } from './readiness';
import { reportHostCapacity } from '../temporal/admission-client';

/**
 * Worker hosts report whether their Docker engine answers, so that the API needs no Docker socket of
 * its own (in docker-compose only the worker mounts it): its readiness reads the latest reports.
 */
export const WORKER_REPORT_INTERVAL_MS = 10_000;
/** A report older than this says nothing any more. */
export const WORKER_REPORT_MAX_AGE_MS = 30_000;

/** Pings this host's Docker engine and records the answer. */
export async function reportWorkerHost(
  prisma: PrismaClient,
  docker: Pick<Docker, 'ping'>,
  host: { hostId: string; taskQueue: string },
): Promise<boolean> {
  const engine = await probe(() => docker.ping());
  const data = {
    taskQueue: host.taskQueue,
    dockerUp: engine.status === 'up',
    dockerError: engine.error ?? null,
    reportedAt: new Date(),
  };
  await prisma.workerHost.upsert({
    where: { hostId: host.hostId },
    create: { hostId: host.hostId, ...data },
    update: data,
  });
  return data.dockerUp;
}

/**
 * Resolves when a worker host of this instance reported its Docker engine up lately; throws with what is known
 * otherwise.
 */
export async function dockerFromWorkerReports(
  prisma: PrismaClient,
  taskQueue: string,
  now = Date.now(),
): Promise<void> {
  const recent = await prisma.workerHost.findMany({
    where: { taskQueue, reportedAt: { gt: new Date(now - WORKER_REPORT_MAX_AGE_MS) } },
  });
  if (recent.some((host) => host.dockerUp)) return;
  const failing = recent.find((host) => host.dockerError);
  throw new Error(
    failing
      ? `worker host ${failing.hostId}: ${failing.dockerError ?? ''}`
      : `no worker host reported in the last ${WORKER_REPORT_MAX_AGE_MS / 1000} s`,
  );
}

export interface WorkerHost {
  hostId: string;
  taskQueue: string;
  /** Agent sandboxes this host runs at once (MAX_CONCURRENT_AGENTS). */
  capacity: number;
}

/**
 * Reports now and every WORKER_REPORT_INTERVAL_MS: the Docker engine's state to PostgreSQL (for the
 * API's readiness) and, every HOST_REPORT_INTERVAL_MS while the engine answers, the host's capacity
 * to the admission workflow (a host that stops reporting gets no new agents). Returns the stop function.
 */
export function startWorkerHostReports(
  prisma: PrismaClient,
  docker: Pick<Docker, 'ping'>,
  temporal: Client,
  host: WorkerHost,
  onError: (error: unknown) => void,
): () => void {
  let lastCapacityReport = 0;
  const report = async (): Promise<void> => {
    const dockerUp = await reportWorkerHost(prisma, docker, host).catch((error: unknown) => {
      onError(error);
      return false;
    });
    if (!dockerUp || Date.now() - lastCapacityReport < HOST_REPORT_INTERVAL_MS) return;
    await reportHostCapacity(temporal, host.taskQueue, { hostId: host.hostId, capacity: host.capacity });
    lastCapacityReport = Date.now();
  };
  const tick = (): void => {
    report().catch(onError);
  };
  tick();
  const timer = setInterval(tick, WORKER_REPORT_INTERVAL_MS);
  return () => clearInterval(timer);
}
