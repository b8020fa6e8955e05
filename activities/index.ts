import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import { createSandboxCheckRecordActivities } from './sandbox-check-records';
import { createSandboxProbeActivities } from './sandbox-check-probe';

export interface ActivityDeps {
  prisma: PrismaClient;
  docker: Docker;
  sandboxImage: string;
  workspacesDir: string;
}

/**
 * Builds every activity from its dependencies. Workflows import only the type of this factory's
 * result, so tests can hand in other dependencies without touching workflow code.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSandboxCheckRecordActivities(deps.prisma),
    ...createSandboxProbeActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
