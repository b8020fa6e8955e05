import path from 'node:path';
import type { InFlightModelCalls } from '../../model-client/calls-in-flight';
import { clampLimits } from '../../sandbox-runtime/container-spec';
import type { AgentOptions } from '../../shared/agent-schemas';
import type { ActivityDeps } from '..';

/** What the sandbox activities use of the worker's dependencies, and the model calls a kill stops. */
export type AgentSandboxDeps = Pick<
  ActivityDeps,
  | 'metrics'
  | 'prisma'
  | 'docker'
  | 'sandboxImage'
  | 'sandboxRuntime'
  | 'workspacesDir'
  | 'hostQueue'
  | 'instance'
  | 'repositories'
  | 'quotaMode'
  | 'workspaceMaxMb'
  | 'warmPool'
  | 'quotaWatch'
  | 'repositoryCache'
> & {
  /** The model calls in flight in this process: a kill stops its agent's. */
  modelCalls: InFlightModelCalls;
};

/** The agent's workspace quota: what its options ask for, within the instance's bound. */
export const quotaOf = (deps: Pick<AgentSandboxDeps, 'workspaceMaxMb'>, options: AgentOptions): number =>
  Math.min(clampLimits(options.resources).diskMb, deps.workspaceMaxMb);

/** The agent's workspace directory on this host. */
export const workspaceOf = (deps: Pick<AgentSandboxDeps, 'workspacesDir'>, agentId: string): string =>
  path.join(deps.workspacesDir, agentId);
