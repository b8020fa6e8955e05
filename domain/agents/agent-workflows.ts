import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/client';
import type { AgentState, AgentType } from '../../shared/agents';
import { AGENT_STATE, AGENT_TYPE, TASK_ID, WORKSPACE_ID } from '../../shared/search-attributes';

export interface AgentWorkflowStart {
  workflowType: string;
  taskQueue: string;
  agentId: string;
  args: unknown[];
  taskId: string;
  agentType: AgentType;
  workspaceId: string;
  state: AgentState;
  /** What the Web UI shows for the run. */
  staticSummary?: string;
  staticDetails?: string;
}

/**
 * Starts the workflow of an agent whose row was just written: its id is the agentId (a second start
 * finds the first), and its search attributes let the Web UI filter on task, type, workspace and
 * state. A start that fails otherwise marks the row failed, so no row waits for a workflow that never
 * ran. Returns false when the workflow already existed.
 */
export async function startAgentWorkflow(temporal: Client, prisma: PrismaClient, start: AgentWorkflowStart): Promise<boolean> {
  try {
    await temporal.workflow.start(start.workflowType, {
      taskQueue: start.taskQueue,
      workflowId: start.agentId,
      args: start.args,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      ...(start.staticSummary ? { staticSummary: start.staticSummary } : {}),
      ...(start.staticDetails ? { staticDetails: start.staticDetails } : {}),
      typedSearchAttributes: [
        { key: TASK_ID, value: start.taskId },
        { key: AGENT_TYPE, value: start.agentType },
        { key: WORKSPACE_ID, value: start.workspaceId },
        { key: AGENT_STATE, value: start.state },
      ],
    });
    return true;
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return false;
    await prisma.agent.update({ where: { id: start.agentId }, data: { state: 'failed', error: 'the workflow could not be started', finishedAt: new Date() } });
    throw error;
  }
}
