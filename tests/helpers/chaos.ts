import type Docker from 'dockerode';
import { AGENT_LABEL } from '../../activities/agent-sandbox';

/**
 * Samples an agent's containers every 200 ms until stopped, and answers the most that existed at
 * once: a chaos test asserts it never ran two sandboxes for one agent. Docker errors while the
 * engine itself is down count as no sample.
 */
export function sampleContainers(docker: Docker, agentId: string): { stop(): Promise<number> } {
  let most = 0;
  const sampling = { on: true };
  const done = (async () => {
    while (sampling.on) {
      const containers = await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } }).catch(() => []);
      most = Math.max(most, containers.length);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    async stop() {
      sampling.on = false;
      await done;
      return most;
    },
  };
}

export const containersOf = async (docker: Docker, agentId: string): Promise<number> =>
  (await docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } })).length;
