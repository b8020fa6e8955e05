import type { WorkerMetrics } from '../platform/metrics';
import type { PrismaClient } from '../prisma/client';
import type { KillRequest } from '../workflows/federated-spawn/contract';
import type { RemoteProgress } from '../shared/federated-agent-schemas';
import { applyAgentState as applyState, type StateChange } from '../domain/agents/agent-states';
import { recordContact } from '../domain/agents/federated-contact';

/** Agent state in PostgreSQL: the row the API lists and every transition with its time. */
export function createAgentRecordActivities(prisma: PrismaClient, metrics: WorkerMetrics) {
  return {
    async recordAgentState(input: StateChange): Promise<void> {
      await prisma.$transaction((tx) => applyState(tx, input, metrics));
    },

    /** Hub side: the spoke's agent id, once its signed reply to the spawn is verified. */
    async recordRemoteAgent(input: { agentId: string; remoteAgentId: string; contactAt: string }): Promise<void> {
      await prisma.federatedAgent.update({
        where: { agentId: input.agentId },
        data: { remoteAgentId: input.remoteAgentId },
      });
      await recordContact(prisma, input.agentId, new Date(input.contactAt));
    },

    /** Hub side: the mirrored state of an agent that runs on a peer, with the progress the spoke reported. */
    async recordFederatedState(
      input: StateChange & {
        progress: RemoteProgress | null;
        startedAt: string | null;
        lastContactAt: string | null;
        kill: KillRequest | null;
        note: string | null;
      },
    ): Promise<void> {
      const { progress } = input;
      await prisma.$transaction(async (tx) => {
        await applyState(
          tx,
          input,
          metrics,
          progress
            ? {
                turn: progress.turn,
                lastTool: progress.lastTool,
                inputTokens: progress.usage.inputTokens,
                outputTokens: progress.usage.outputTokens,
              }
            : {},
        );
        await tx.federatedAgent.update({
          where: { agentId: input.agentId },
          data: {
            ...(progress ? { progress } : {}),
            ...(input.startedAt ? { remoteStartedAt: new Date(input.startedAt) } : {}),
            ...(input.kill ? { kill: { ...input.kill } } : {}),
            note: input.note,
          },
        });
        if (input.lastContactAt) await recordContact(tx, input.agentId, new Date(input.lastContactAt));
      });
    },
  };
}
