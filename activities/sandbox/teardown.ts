import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { releaseWorkspace } from '../../sandbox-runtime/workspace';
import type { AgentOptions } from '../../shared/agent-schemas';
import { TERMINAL_STATES } from '../../shared/vocabulary';
import { whileHeartbeating } from '../heartbeat';
import { quotaOf, workspaceOf, type AgentSandboxDeps } from './deps';
import { removeAgentContainer } from './liveness';

type RemovalInput = { agentId: string; killRequestedAt?: string };

/** The end of a sandbox: removed at once on a kill, torn down when the run is over. */
export function createTeardownActivities(deps: AgentSandboxDeps) {
  return {
    /**
     * A kill's first step: the agent's container goes at once, whatever runs in it, and its model call stops (the
     * teardown follows once the run has stopped). Idempotent.
     */
    async removeSandboxContainer(input: RemovalInput): Promise<void> {
      deps.modelCalls.abort(input.agentId); // a model call of the agent streaming on this host stops too
      deps.quotaWatch?.unwatch(input.agentId);
      await removeAgentContainer(deps, input);
    },

    /** Removes the agent's container; the workspace with its result branch stays for inspection. Idempotent. */
    async teardownSandbox(input: RemovalInput): Promise<void> {
      await whileHeartbeating(async () => {
        deps.quotaWatch?.unwatch(input.agentId);
        await removeAgentContainer(deps, input);
        void deps.warmPool?.refill(); // a place is free again
        await releaseWorkspace(workspaceOf(deps, input.agentId));
      });
    },
  };
}

/**
 * Where quotas are only watched: resumes the watch over this host's live sandboxes after the worker (re)started, since
 * a sandbox outlives the worker process that launched it.
 */
export async function watchLiveSandboxes(
  deps: Pick<AgentSandboxDeps, 'prisma' | 'quotaWatch' | 'hostQueue' | 'workspacesDir' | 'workspaceMaxMb'>,
): Promise<number> {
  const watch = deps.quotaWatch;
  if (!watch) return 0;
  const live = await deps.prisma.agent.findMany({
    where: { hostQueue: deps.hostQueue, state: { notIn: [...TERMINAL_STATES] } },
    select: { id: true, options: true },
  });
  for (const agent of live) {
    const quotaMb = quotaOf(deps, agent.options as AgentOptions);
    watch.watch(agent.id, containerNameFor(agent.id), workspaceOf(deps, agent.id), quotaMb);
  }
  return live.length;
}
