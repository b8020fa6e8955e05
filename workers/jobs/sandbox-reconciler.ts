import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type Docker from 'dockerode';
import path from 'node:path';
import { agentIdOfSandbox } from '../../sandbox-runtime/agent-containers';
import { isUnclaimedPoolContainer, POOL_SLOT_LABEL, type WarmPool } from '../../sandbox-runtime/warm-pool';
import { containerNameOf, removeContainerIfPresent } from '../../sandbox-runtime/containers';
import { releaseWorkspace, removeWorkspace } from '../../sandbox-runtime/workspace';
import { SANDBOX_LABEL_INSTANCE, SANDBOX_LABEL_MANAGED } from '../../sandbox-runtime/container-spec';

export interface ReconcileResult {
  kept: string[];
  removed: string[];
}

/** The label value naming an instance: workflows of other instances are invisible to this one's client. */
export function instanceLabel(namespace: string, taskQueue: string): string {
  return `${namespace}/${taskQueue}`;
}

/**
 * Removes this instance's sandbox containers on this host whose workflow is gone or closed (a worker that died between
 * launch and teardown, a workflow terminated from the Web UI). Run at worker start and on a schedule.
 * A container whose workflow cannot be described right now is kept: never remove on doubt.
 */
export async function reconcileSandboxes(
  docker: Docker,
  temporal: Client,
  instance: string,
  workspacesDir?: string,
  warmPool?: Pick<WarmPool, 'owns'> | null,
): Promise<ReconcileResult> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${SANDBOX_LABEL_MANAGED}=true`, `${SANDBOX_LABEL_INSTANCE}=${instance}`] },
  });
  const result: ReconcileResult = { kept: [], removed: [] };
  for (const container of containers) {
    const name = containerNameOf(container);
    const warmSlot = container.Labels[POOL_SLOT_LABEL];
    if (warmSlot !== undefined && isUnclaimedPoolContainer(name)) {
      // A warm sandbox no agent claimed: the pool's own, or left by an earlier worker process.
      if (warmPool?.owns(name)) {
        result.kept.push(name);
        continue;
      }
      await removeContainerIfPresent(docker, container.Id);
      await removeWorkspace(warmSlot).catch(() => undefined);
      result.removed.push(name);
      continue;
    }
    const workflowId = agentIdOfSandbox(container);
    let orphan: boolean;
    try {
      orphan = !workflowId || (await temporal.workflow.getHandle(workflowId).describe()).status.name !== 'RUNNING';
    } catch (error) {
      orphan = error instanceof WorkflowNotFoundError;
    }
    if (!orphan) {
      result.kept.push(name);
      continue;
    }
    await removeContainerIfPresent(docker, container.Id);
    // Its workspace stays (for inspection, until the retention), but no longer mounted.
    if (workspacesDir && workflowId)
      await releaseWorkspace(path.join(workspacesDir, workflowId)).catch(() => undefined);
    result.removed.push(name);
  }
  return result;
}
