import type { WorkerMetrics } from '../../platform/metrics';
import type { Prisma } from '../../prisma/client';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import { appendEvent } from './agent-events';

/** A tool call that waits for an operator's decision (options.approvals); it goes back to pending once approved. */
export const AWAITING_APPROVAL = 'awaiting_approval';

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
export async function applyAgentState(
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
      where: { agentId: change.agentId, status: { in: ['pending', AWAITING_APPROVAL] } },
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
