import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { WorkerMetrics } from '../../platform/metrics';
import type { PrismaClient } from '../../prisma/client';
import { isTerminalState, TERMINAL_STATES, type AgentState } from '../../shared/vocabulary';
import { createAgentRecordActivities } from '../../activities/agent-records';

/** A row younger than this may still be waiting for the API to start its workflow. */
const START_GRACE_MS = 30_000;

export interface ReconciledAgent {
  agentId: string;
  state: AgentState;
  reason: string;
}

/** The terminal state (and why) that matches a closed workflow; null while it runs or when that cannot be told now. */
async function verdictOf(temporal: Client, agentId: string): Promise<{ state: AgentState; reason: string } | null> {
  const handle = temporal.workflow.getHandle(agentId);
  let status: string;
  try {
    status = (await handle.describe()).status.name;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError)
      return {
        state: 'failed',
        reason: 'its workflow never started (the API stopped between recording the agent and starting it)',
      };
    return null; // Temporal unreachable: never decide on doubt
  }
  switch (status) {
    case 'RUNNING':
    case 'CONTINUED_AS_NEW':
      return null;
    case 'COMPLETED': {
      const result = (await handle.result().catch(() => null)) as { state?: unknown; error?: unknown } | null;
      const state = isTerminalState(result?.state) ? result.state : 'failed';
      return {
        state,
        reason:
          typeof result?.error === 'string' && result.error
            ? result.error
            : `its workflow completed with state ${state}, which was not recorded`,
      };
    }
    case 'FAILED': {
      const message = await handle.result().then(
        () => 'its workflow failed',
        (error: unknown) =>
          error instanceof WorkflowFailedError && error.cause ? error.cause.message : 'its workflow failed',
      );
      return { state: 'failed', reason: message };
    }
    case 'TERMINATED':
      return { state: 'killed', reason: 'its workflow was terminated (from the Web UI or the CLI)' };
    case 'CANCELLED':
      return { state: 'killed', reason: 'its workflow was cancelled' };
    case 'TIMED_OUT':
      return { state: 'timed_out', reason: 'its workflow timed out' };
    default:
      return null;
  }
}

/**
 * Rows and workflows agree: every live agent row whose workflow is missing or closed gets the terminal
 * state that matches, with the reason. The worker runs it every RECONCILE_ROWS_INTERVAL_MS; terminal
 * states are final, so a row the workflow itself finished meanwhile is left as it is.
 */
export async function reconcileAgentRows(
  prisma: PrismaClient,
  temporal: Client,
  metrics: WorkerMetrics,
  now = Date.now(),
): Promise<ReconciledAgent[]> {
  const records = createAgentRecordActivities(prisma, metrics);
  const live = await prisma.agent.findMany({
    where: { state: { notIn: [...TERMINAL_STATES] }, createdAt: { lt: new Date(now - START_GRACE_MS) } },
    select: { id: true },
  });
  const reconciled: ReconciledAgent[] = [];
  for (const { id } of live) {
    const verdict = await verdictOf(temporal, id);
    if (!verdict) continue;
    // The workflow may have recorded its end while it was described (a describe takes a while under load).
    const current = await prisma.agent.findUnique({ where: { id }, select: { state: true } });
    if (!current || isTerminalState(current.state)) continue;
    const error = verdict.state === 'completed' ? {} : { error: verdict.reason };
    await records.recordAgentState({
      agentId: id,
      state: verdict.state,
      detail: `reconciled with its workflow: ${verdict.reason}`,
      ...error,
    });
    reconciled.push({ agentId: id, ...verdict });
  }
  return reconciled;
}
