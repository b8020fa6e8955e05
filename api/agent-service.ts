import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Prisma, type PrismaClient } from '../prisma/client';
import { AGENT_RUN_WORKFLOW, agentStatusQuery, killAgentSignal, TERMINAL_STATES, type AgentRunInput, type AgentState, type AgentStatus, type SpawnAgentRequest } from '../shared/agents';
import { AGENT_STATE, AGENT_TYPE, TASK_ID, WORKSPACE_ID } from '../shared/search-attributes';
import { ApiError } from './errors';

/**
 * Spawning, viewing and killing agents, shared by the REST routes and the federation command
 * handler (which spawns on behalf of a connected hub, into the connection's workspace).
 */
export type AgentRow = Prisma.AgentGetPayload<{ include: { result: true } }>;

export interface SpawnOutcome {
  agentId: string;
  status: AgentState;
  existing: boolean;
}

export interface AgentServiceDeps {
  temporal: Client;
  prisma: PrismaClient;
  taskQueue: string;
  maxConcurrentAgents: number;
}

export function createAgentService(deps: AgentServiceDeps) {
  const { prisma, temporal } = deps;

  /** The caller's agent row: 404 unknown, 403 another workspace's. */
  async function ownedRow(agentId: string, workspaceId: string): Promise<AgentRow> {
    const row = await prisma.agent.findUnique({ where: { id: agentId }, include: { result: true } });
    if (!row) throw new ApiError(404, 'not_found', `No agent ${agentId}`);
    if (row.workspaceId !== workspaceId) throw new ApiError(403, 'forbidden', `Agent ${agentId} belongs to another workspace`);
    return row;
  }

  return {
    /** Starts an agentRun; `agentId` may be given (derived from a federation messageId, so a replay is a no-op). */
    async spawn(workspaceId: string, request: SpawnAgentRequest, agentId = `agent-${randomUUID()}`): Promise<SpawnOutcome> {
      const known = await prisma.agent.findUnique({ where: { id: agentId } });
      if (known) return { agentId, status: known.state as AgentState, existing: true };
      const occupied = await prisma.agent.count({ where: { state: { in: ['spawning', 'running'] } } });
      const initialState = occupied >= deps.maxConcurrentAgents ? 'queued' : 'spawning';
      try {
        await prisma.agent.create({
          data: { id: agentId, workspaceId, taskId: request.taskId, agentType: request.agentType, state: initialState, context: request.context, options: request.options },
        });
      } catch (error) {
        // The partial unique index allows one live agent per task: return that one.
        if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')) throw error;
        const live = await prisma.agent.findFirst({ where: { workspaceId, taskId: request.taskId, state: { notIn: [...TERMINAL_STATES] } } });
        if (!live) throw new ApiError(409, 'conflict', 'Another spawn for this task is in progress; retry');
        return { agentId: live.id, status: live.state as AgentState, existing: true };
      }
      const input: AgentRunInput = { agentId, workspaceId, taskId: request.taskId, agentType: request.agentType, context: request.context, options: request.options, initialState };
      try {
        await temporal.workflow.start(AGENT_RUN_WORKFLOW, {
          taskQueue: deps.taskQueue,
          workflowId: agentId,
          args: [input],
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: [
            { key: TASK_ID, value: request.taskId },
            { key: AGENT_TYPE, value: request.agentType },
            { key: WORKSPACE_ID, value: workspaceId },
            { key: AGENT_STATE, value: initialState },
          ],
        });
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) return { agentId, status: initialState, existing: true };
        await prisma.agent.update({ where: { id: agentId }, data: { state: 'failed', error: 'the workflow could not be started', finishedAt: new Date() } });
        throw error;
      }
      return { agentId, status: initialState, existing: false };
    },

    /** The caller's agent with its live status when it is still running; 404 unknown, 403 another workspace's. */
    async view(agentId: string, workspaceId: string): Promise<{ row: AgentRow; live?: AgentStatus }> {
      const row = await ownedRow(agentId, workspaceId);
      if (TERMINAL_STATES.includes(row.state as AgentState)) return { row };
      // The query reads workflow memory; without a worker to answer it, the row is the answer.
      const live = await temporal
        .withDeadline(Date.now() + 3_000, () => temporal.workflow.getHandle(agentId).query(agentStatusQuery))
        .catch(() => undefined);
      return live ? { row, live } : { row };
    },

    async kill(agentId: string, workspaceId: string, reason: string): Promise<void> {
      const row = await ownedRow(agentId, workspaceId);
      if (TERMINAL_STATES.includes(row.state as AgentState)) throw new ApiError(409, 'already_finished', `Agent ${agentId} has already finished (${row.state})`);
      try {
        await temporal.workflow.getHandle(agentId).signal(killAgentSignal, { reason });
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) throw new ApiError(409, 'already_finished', `Agent ${agentId} has already finished`);
        throw error;
      }
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
