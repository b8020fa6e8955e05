import type { PrismaClient } from '../prisma/client';
import { TERMINAL_STATES, type AgentState } from '../shared/agents';

/** Agent state in PostgreSQL: the row the API lists and every transition with its time. */
export function createAgentRecordActivities(prisma: PrismaClient) {
  return {
    /** Idempotent: recording the state the agent is already in adds no transition. */
    async recordAgentState(input: { agentId: string; state: AgentState; detail?: string; error?: string }): Promise<void> {
      await prisma.$transaction(async (tx) => {
        const agent = await tx.agent.findUniqueOrThrow({ where: { id: input.agentId }, select: { state: true } });
        if (agent.state === input.state) return;
        await tx.agentTransition.create({ data: { agentId: input.agentId, fromState: agent.state, toState: input.state, detail: input.detail ?? null } });
        await tx.agent.update({
          where: { id: input.agentId },
          data: {
            state: input.state,
            ...(input.error !== undefined ? { error: input.error } : {}),
            ...(TERMINAL_STATES.includes(input.state) ? { finishedAt: new Date() } : {}),
          },
        });
      });
    },
  };
}
