import type { WorkerMetrics } from '../platform/metrics';
import type { Prisma, PrismaClient } from '../prisma/client';
import { isTerminalState, type AgentState } from '../shared/vocabulary';
import type { KillRequest } from '../workflows/federated-spawn/contract';
import type { RemoteProgress } from '../shared/federated-agent-schemas';
import { appendEvent } from '../domain/agents/agent-events';
import { recordContact } from '../domain/agents/federated-contact';

export interface StateChange {
  agentId: string;
  state: AgentState;
  detail?: string;
  error?: string;
}

/**
 * Moves an agent's row to a state and records the transition, in the caller's transaction.
 * Idempotent: recording the state the agent is already in adds no transition. Terminal states are final.
 */
async function applyState(
  tx: Prisma.TransactionClient,
  change: StateChange,
  metrics: WorkerMetrics,
  extra: Prisma.AgentUpdateInput = {},
): Promise<void> {
  const agent = await tx.agent.findUniqueOrThrow({
    where: { id: change.agentId },
    select: { state: true, startedAt: true, agentType: true },
  });
  const moves = agent.state !== change.state && !isTerminalState(agent.state);
  if (moves && agent.state === 'queued') {
    const queuedAt = await tx.agentTransition.findFirst({
      where: { agentId: change.agentId, toState: 'queued' },
      orderBy: { id: 'desc' },
      select: { at: true },
    });
    if (queuedAt) metrics.queueWait.observe((Date.now() - queuedAt.at.getTime()) / 1000);
  }
  if (moves && isTerminalState(change.state))
    metrics.runsEnded.inc({ agent_type: agent.agentType, state: change.state });
  if (moves && isTerminalState(change.state)) {
    // No call stays open past the run: one a kill or the deadline stopped was cancelled; after a failure its outcome is
    // unknown.
    const stopped = change.state === 'killed' || change.state === 'timed_out';
    const endedAt = new Date();
    await tx.toolCall.updateMany({
      where: { agentId: change.agentId, status: 'started' },
      data: { status: stopped ? 'cancelled' : 'unknown', isError: true, finishedAt: endedAt },
    });
    await tx.toolCall.updateMany({
      where: { agentId: change.agentId, status: 'pending' },
      data: { status: 'cancelled', isError: true, finishedAt: endedAt },
    });
  }
  if (moves) {
    await tx.agentTransition.create({
      data: { agentId: change.agentId, fromState: agent.state, toState: change.state, detail: change.detail ?? null },
    });
    await appendEvent(tx, change.agentId, {
      type: 'state',
      state: change.state,
      detail: change.detail ?? null,
      error: change.error ?? null,
    });
  }
  await tx.agent.update({
    where: { id: change.agentId },
    data: {
      ...extra,
      ...(moves ? { state: change.state } : {}),
      ...(moves && change.error !== undefined ? { error: change.error } : {}),
      ...(moves && change.state === 'running' && agent.startedAt === null ? { startedAt: new Date() } : {}),
      ...(moves && isTerminalState(change.state) ? { finishedAt: new Date() } : {}),
    },
  });
}

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
