import { createCollectActivities } from './collect';
import type { AgentSandboxDeps } from './deps';
import { createLaunchActivities } from './launch';
import { createRunToolActivities } from './run-tool';
import { createSuspendActivities } from './suspend';
import { createTeardownActivities } from './teardown';

export type { AgentSandboxDeps } from './deps';
export { isSandboxRemoved, stoppedByKill } from './failures';
export { watchLiveSandboxes } from './teardown';

/** The activities of an agent's sandbox on this host: launch, tool calls, pause, collect and teardown. */
export function createAgentSandboxActivities(deps: AgentSandboxDeps) {
  return {
    ...createLaunchActivities(deps),
    ...createRunToolActivities(deps),
    ...createCollectActivities(deps),
    ...createTeardownActivities(deps),
    ...createSuspendActivities(deps),
  };
}
