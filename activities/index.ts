import type Anthropic from '@anthropic-ai/sdk';
import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import { createAgentRecordActivities } from './agent-records';
import { createAgentSandboxActivities } from './agent-sandbox';
import { createModelActivities } from './model';
import { createSandboxCheckRecordActivities } from './sandbox-check-records';
import { createSandboxProbeActivities } from './sandbox-check-probe';

export interface ActivityDeps {
  prisma: PrismaClient;
  docker: Docker;
  anthropic: Anthropic | null;
  sandboxImage: string;
  workspacesDir: string;
  /** This host's own task queue (sandbox activities run where their container is). */
  hostQueue: string;
  /** `<namespace>/<task queue>`: labels this instance's containers for its reconciler. */
  instance: string;
  /** Agent sandboxes this host runs at once (MAX_CONCURRENT_AGENTS). */
  maxConcurrentAgents: number;
}

/**
 * Builds every activity from its dependencies. Workflows import only the type of this factory's
 * result, so tests can hand in other dependencies without touching workflow code.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSandboxCheckRecordActivities(deps.prisma),
    ...createSandboxProbeActivities(deps),
    ...createAgentRecordActivities(deps.prisma),
    ...createModelActivities(deps),
    ...createAgentSandboxActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
