import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { AGENT_LABEL } from '../../sandbox-runtime/agent-containers';
import type { PrismaClient } from '../../prisma/client';
import { SpawnAgentRequestSchema } from '../../shared/agent-schemas';
import { AGENT_RUN_WORKFLOW, type AgentRunInput } from '../../workflows/agent-run/contract';
import type { TestInstance } from './instance';

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
      const containers = await docker
        .listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } })
        .catch(() => []);
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

/** The activity types an agent's workflow is running right now. */
export async function pendingActivityTypes(
  temporal: Client,
  agentId: string,
): Promise<Array<string | null | undefined>> {
  return ((await temporal.workflow.getHandle(agentId).describe()).raw.pendingActivities ?? []).map(
    (activity) => activity.activityType?.name,
  );
}

/**
 * Locks an agent's row (SELECT … FOR UPDATE in an open transaction), as a slow database would: the
 * launch then waits at its last step, recording the host on the row. Resolves once locked, with the release.
 */
export async function lockAgentRow(prisma: PrismaClient, agentId: string): Promise<() => void> {
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  await new Promise<void>((resolve, reject) => {
    prisma
      .$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT id FROM agents WHERE id = ${agentId} FOR UPDATE`;
          resolve();
          await released;
        },
        { timeout: 120_000 },
      )
      .catch(reject);
  });
  return release;
}

/**
 * Starts an agent's workflow directly (as the API would, with its row) with `turnsPerRun` turns per
 * run, so that a test sees it continue as new after a few turns. Answers its id and first run id.
 */
export async function startContinuingAgent(
  instance: TestInstance,
  agent: { workspaceId: string; taskId: string; repository: string; workItem: string; turnsPerRun: number },
): Promise<{ agentId: string; firstRunId: string }> {
  const agentId = `agent-${randomUUID()}`;
  const context = { repository: agent.repository, branch: 'main', workItems: [agent.workItem] };
  const input: AgentRunInput = {
    agentId,
    workspaceId: agent.workspaceId,
    taskId: agent.taskId,
    agentType: 'worker',
    context,
    options: SpawnAgentRequestSchema.parse({ taskId: agent.taskId, agentType: 'worker', context }).options,
    initialState: 'spawning',
    turnsPerRun: agent.turnsPerRun,
  };
  await instance.prisma.agent.create({
    data: {
      id: agentId,
      workspaceId: agent.workspaceId,
      taskId: agent.taskId,
      agentType: 'worker',
      state: 'spawning',
      context,
      options: input.options,
    },
  });
  const handle = await instance.temporal.workflow.start(AGENT_RUN_WORKFLOW, {
    taskQueue: instance.taskQueue,
    workflowId: agentId,
    args: [input],
  });
  return { agentId, firstRunId: handle.firstExecutionRunId };
}

/**
 * Spawns an agent whose first bash command (`command`) waits for approval, and resolves once it waits: the agent's
 * state is input_required and its sandbox paused in the engine. Returns the agent and the waiting call.
 */
export async function spawnWaitingForApproval(
  instance: TestInstance,
  token: string,
  spawn: { taskId: string; repository: string; workItem: string; match: string },
): Promise<{ agentId: string; toolCallId: string }> {
  const headers = { authorization: `Bearer ${token}` };
  const spawned = await fetch(`${instance.baseUrl}/agents/spawn`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({
      taskId: spawn.taskId,
      agentType: 'worker',
      context: { repository: spawn.repository, branch: 'main', workItems: [spawn.workItem] },
      options: { approvals: [{ tool: 'bash', match: spawn.match }] },
    }),
  });
  const { agentId } = (await spawned.json()) as { agentId: string };
  for (let waited = 0; waited < 60_000; waited += 200) {
    const status = (await (await fetch(`${instance.baseUrl}/agents/${agentId}/status`, { headers })).json()) as {
      state: string;
      pendingApproval?: { toolCallId: string } | null;
    };
    const paused = await sandboxPaused(instance.docker, agentId);
    if (status.state === 'input_required' && status.pendingApproval && paused)
      return { agentId, toolCallId: status.pendingApproval.toolCallId };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`agent ${agentId} did not come to wait for an approval`);
}

/** Whether the agent's sandbox is paused in the engine (false when it is gone or the engine does not answer). */
export const sandboxPaused = async (docker: Docker, agentId: string): Promise<boolean> =>
  await docker
    .getContainer(`agent-${agentId}`)
    .inspect()
    .then((info) => info.State.Paused)
    .catch(() => false);
