import type { AgentSandboxDeps } from './deps';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { isNotFound } from '../../sandbox-runtime/containers';

/**
 * Pausing a sandbox while its agent waits for an operator (an approval, or a pause), and resuming it: the engine's
 * freezer stops every process, so a waiting sandbox takes no CPU. Both are idempotent: a retry finds the container
 * already as asked. A container that is gone (a kill removed it) needs neither: the next step finds out why.
 */
export function createSuspendActivities(deps: Pick<AgentSandboxDeps, 'docker'>) {
  async function setPaused(agentId: string, paused: boolean): Promise<void> {
    const container = deps.docker.getContainer(containerNameFor(agentId));
    const state = await container
      .inspect()
      .then((info) => info.State)
      .catch((error: unknown) => {
        if (isNotFound(error)) return null;
        throw error; // the engine did not answer (restarting): the activity is retried
      });
    if (!state?.Running || state.Paused === paused) return;
    await (paused ? container.pause() : container.unpause());
  }
  return {
    async pauseSandbox(input: { agentId: string }): Promise<void> {
      await setPaused(input.agentId, true);
    },
    async resumeSandbox(input: { agentId: string }): Promise<void> {
      await setPaused(input.agentId, false);
    },
  };
}
