import type { ContainerInfo } from 'dockerode';
import { containerNameOf } from './containers';
import { SANDBOX_LABEL_WORKFLOW } from './container-spec';
import { POOL_SLOT_LABEL } from './warm-pool';

/** How an agent's sandbox is named and labelled on its host, and the branch its result is on. */

export const AGENT_LABEL = 'agent-orchestrator.agent-id';
export const WORKSPACE_LABEL = 'agent-orchestrator.workspace-id';
export const DEADLINE_LABEL = 'agent-orchestrator.deadline';

const CONTAINER_PREFIX = 'agent-';
export const containerNameFor = (agentId: string): string => `${CONTAINER_PREFIX}${agentId}`;

/**
 * The workflow (agent id) a sandbox belongs to: its label, or for a claimed warm container (created
 * before its agent existed, labels fixed) its name. Undefined for a sandbox of no agent.
 */
export function agentIdOfSandbox(container: Pick<ContainerInfo, 'Names' | 'Id' | 'Labels'>): string | undefined {
  const labelled = container.Labels[SANDBOX_LABEL_WORKFLOW];
  if (labelled) return labelled;
  const name = containerNameOf(container);
  return container.Labels[POOL_SLOT_LABEL] !== undefined && name.startsWith(CONTAINER_PREFIX)
    ? name.slice(CONTAINER_PREFIX.length)
    : undefined;
}
export const resultBranchFor = (agentId: string): string => `agent/${agentId}`;
