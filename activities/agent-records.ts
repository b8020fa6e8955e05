import type { WorkerMetrics } from '../platform/metrics';
import type { PrismaClient } from '../prisma/client';
import type { KillRequest } from '../workflows/federated-spawn/contract';
import type { RemoteProgress } from '../shared/federated-agent-schemas';
import { applyAgentState as applyState, AWAITING_APPROVAL, type StateChange } from '../domain/agents/agent-states';
import { appendEvent } from '../domain/agents/agent-events';
import type { ApprovalRecord } from '../workflows/agent-run/contract';
import { recordContact } from '../domain/agents/federated-contact';

/** Agent state in PostgreSQL: the row the API lists and every transition with its time. */
export function createAgentRecordActivities(prisma: PrismaClient, metrics: WorkerMetrics) {
  return {
    async recordAgentState(input: StateChange): Promise<void> {
      await prisma.$transaction((tx) => applyState(tx, input, metrics));
    },

    /**
     * A gated tool call: it waits (requested), then runs (approved) or gets the denial as its result (denied). Each
     * step moves the call's row once and appends its event with it, so a retried record tells the stream nothing twice.
     */
    async recordApproval(input: ApprovalRecord): Promise<void> {
      const { agentId, toolCallId } = input;
      await prisma.$transaction(async (tx) => {
        const event = { type: 'approval' as const, toolCallId, tool: input.label, rule: input.rule };
        if (input.phase === 'requested') {
          const moved = await tx.toolCall.updateMany({
            where: { agentId, id: toolCallId, status: 'pending' },
            data: { status: AWAITING_APPROVAL },
          });
          if (moved.count > 0)
            await appendEvent(tx, agentId, {
              ...event,
              phase: 'requested',
              expiresAt: input.expiresAt,
              onTimeout: input.onTimeout,
            });
          return;
        }
        const denied = input.decision === 'deny';
        const why = input.decidedBy === 'timeout' ? 'no operator decided in time' : 'the operator denied it';
        const moved = await tx.toolCall.updateMany({
          where: { agentId, id: toolCallId, status: AWAITING_APPROVAL },
          data: denied
            ? {
                status: 'finished',
                isError: true,
                output: `This call was not run: ${why}.` + (input.note ? ` Note from the operator: ${input.note}` : ''),
                finishedAt: new Date(),
              }
            : { status: 'pending' },
        });
        if (moved.count > 0)
          await appendEvent(tx, agentId, {
            ...event,
            phase: 'decided',
            decision: input.decision,
            decidedBy: input.decidedBy,
            note: input.note,
          });
      });
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
