import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/client';
import type { AgentContext } from '../../shared/agent-schemas';
import type { AgentState, AgentType } from '../../shared/vocabulary';
import { agentSearchAttributes, LOCAL_INSTANCE, repositoryForDisplay } from '../../shared/search-attributes';

export interface AgentWorkflowStart {
  workflowType: string;
  taskQueue: string;
  agentId: string;
  args: unknown[];
  taskId: string;
  agentType: AgentType;
  workspaceId: string;
  state: AgentState;
  priority: number;
  context: Pick<AgentContext, 'repository' | 'branch' | 'workItems'>;
  /** The limits the run gets, as the task set them. */
  limits: { timeout: number; maxTurns?: number; tokenBudget?: number; maxRetries: number };
  /** Who asked: a hub (its peer name) for an agent a hub spawned here; the workspace otherwise. */
  requestedByHub?: string;
  /** The peer that runs the agent, for an agent this instance spawned on a peer. */
  runsOnPeer?: string;
  /** A follow-up: the finished agent whose result it starts from. */
  parentAgentId?: string;
}

/** The one line the Web UI shows for the run: what, for which task, where. */
export function agentRunSummary(
  start: Pick<AgentWorkflowStart, 'agentType' | 'taskId' | 'context' | 'runsOnPeer'>,
): string {
  const where = start.runsOnPeer ? ` on peer ${start.runsOnPeer}` : '';
  return (
    `${start.agentType} agent · task ${start.taskId} · ` +
    `${repositoryForDisplay(start.context.repository)}@${start.context.branch}${where}`
  );
}

/** The run's details in the Web UI (markdown): who asked, what, and its limits. */
export function agentRunDetails(
  start: Omit<AgentWorkflowStart, 'workflowType' | 'taskQueue' | 'args' | 'state'>,
  workspace: string,
): string {
  const { limits } = start;
  return [
    `**Agent** ${start.agentId} (${start.agentType})`,
    `**Task** ${start.taskId}, ${start.context.workItems.length} work ` +
      `item${start.context.workItems.length === 1 ? '' : 's'}`,
    `**Repository** ${repositoryForDisplay(start.context.repository)} @ ${start.context.branch}`,
    `**Requested by** ${start.requestedByHub ? `hub ${start.requestedByHub}` : `workspace ${workspace}`}`,
    `**Runs on** ${start.runsOnPeer ? `peer ${start.runsOnPeer}` : 'this instance'}`,
    ...(start.parentAgentId
      ? [`**Continues** agent ${start.parentAgentId} (its result is this run's start; \`TaskId\` lists both)`]
      : []),
    `**Limits** timeout ${limits.timeout} s` +
      (limits.maxTurns !== undefined ? `, ${limits.maxTurns} turns` : '') +
      (limits.tokenBudget !== undefined ? `, ${limits.tokenBudget} tokens` : '') +
      `, ${limits.maxRetries} retries; priority ${start.priority}`,
  ].join('\n\n');
}

/**
 * Starts the workflow of an agent whose row was just written: its id is the agentId (a second start
 * finds the first); its summary and details tell the Web UI what the run is, and its search
 * attributes let the list filter on id, task, type, workspace, priority, peer, repository and state.
 * A start that fails otherwise marks the row failed, so no row waits for a workflow that never ran.
 * Returns false when the workflow already existed.
 */
export async function startAgentWorkflow(
  temporal: Client,
  prisma: PrismaClient,
  start: AgentWorkflowStart,
): Promise<boolean> {
  try {
    const { name: workspace } = await prisma.workspace.findUniqueOrThrow({
      where: { id: start.workspaceId },
      select: { name: true },
    });
    await temporal.workflow.start(start.workflowType, {
      taskQueue: start.taskQueue,
      workflowId: start.agentId,
      args: start.args,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      staticSummary: agentRunSummary(start),
      staticDetails: agentRunDetails(start, workspace),
      typedSearchAttributes: agentSearchAttributes({
        agentId: start.agentId,
        state: start.state,
        agentType: start.agentType,
        taskId: start.taskId,
        workspace,
        priority: start.priority,
        remoteInstance: start.runsOnPeer ?? LOCAL_INSTANCE,
        repository: start.context.repository,
      }),
    });
    return true;
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return false;
    await prisma.agent.update({
      where: { id: start.agentId },
      data: { state: 'failed', error: 'the workflow could not be started', finishedAt: new Date() },
    });
    throw error;
  }
}
