import { randomUUID } from 'node:crypto';
import { priceOf, type ModelPriceTable } from '../../config/model-prices';
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { outboundCommand } from '../../federation/messages';
import { startFederationCommand } from '../../temporal/federation-command-client';
import {
  refusalOf,
  steeringCommand,
  steeringError,
  updateRun,
  type SteeringAction,
  type SteeringAnswer,
} from './steering';
import { isUniqueViolation, Prisma, type PrismaClient } from '../../prisma/client';
import {
  AGENT_RUN_WORKFLOW,
  agentStatusQuery,
  killAgentSignal,
  type AgentRunInput,
  type AgentStatus,
} from '../../workflows/agent-run/contract';
import {
  DEFAULT_PRIORITY,
  isTerminalState,
  TERMINAL_STATES,
  type AgentState,
  type AgentType,
} from '../../shared/vocabulary';
import {
  type AgentContext,
  type AgentOptions,
  type ContinueAgentRequest,
  type SpawnAgentRequest,
} from '../../shared/agent-schemas';
import { followUpContext } from './follow-ups';
import { federatedAgentStatusQuery, type FederatedAgentStatus } from '../../workflows/federated-spawn/contract';
import { type AgentOrigin } from '../../workflows/hub-event-delivery/contract';
import { admitRepository, RepositoryRefused, type RepositoryPolicy } from '../../platform/repository-policy';
import { DomainError } from '../errors';
import { requestAdmission } from '../../temporal/admission-client';
import { startAgentWorkflow } from './agent-workflows';
import { firstEvent } from './agent-events';

/**
 * The agent service: spawning, viewing, listing and killing agents of a workspace. The REST routes
 * and the federation command handler (which spawns on behalf of a connected hub, into the
 * connection's workspace) both go through it.
 */
export const AGENT_ROW_INCLUDE = {
  result: true,
  remote: { include: { connection: true } },
  followUps: { select: { id: true }, orderBy: { createdAt: 'asc' } },
} as const;
export type AgentRow = Prisma.AgentGetPayload<{ include: typeof AGENT_ROW_INCLUDE }>;
/** A row as lists show it: without its result (the diff and test output are read only where one agent is shown). */
const AGENT_LIST_INCLUDE = { remote: { include: { connection: true } } } as const;
export type AgentListRow = Omit<AgentRow, 'result' | 'followUps'> & {
  result?: AgentRow['result'];
  followUps?: AgentRow['followUps'];
};
/** What an ownership check reads: never the run's context, transcript or result. */
const OWNERSHIP_SELECT = {
  id: true,
  workspaceId: true,
  originConnectionId: true,
  state: true,
  remote: { select: { agentId: true } },
} as const;

/** What the running workflow says about an agent: agentRun's status, or for an agent on a peer the mirrored one. */
/** How long a status request waits for the workflow's answer before it answers from the database instead. */
export const LIVE_STATUS_DEADLINE_MS = 1_000;

export type LiveStatus = { kind: 'local'; status: AgentStatus } | { kind: 'remote'; status: FederatedAgentStatus };

/** Who asks: a workspace (API token), or a connected hub (only agents it spawned through that connection). */
export type Owner = { workspaceId: string } | { connectionId: string };

export interface SpawnOutcome {
  agentId: string;
  status: AgentState;
  existing: boolean;
  createdAt: Date;
}

/** How long a spawn waits for the admission workflow's answer (no worker up: the agent is answered queued). */
const ADMISSION_ANSWER_TIMEOUT_MS = 5_000;

export interface AgentServiceDeps {
  temporal: Client;
  prisma: PrismaClient;
  taskQueue: string;
  /** Where repositories may come from: a spawn outside it is refused before anything starts. */
  repositories: RepositoryPolicy;
  /** The largest workspace quota an agent may ask for (WORKSPACE_MAX_MB). */
  workspaceMaxMb: number;
  /** Prices per model: a cost budget needs its model's price. */
  modelPrices: ModelPriceTable;
}

/**
 * A hub's spawn: the id derived from its messageId, where it came from, and whether its connection allows local
 * repositories.
 */
export interface PeerSpawn {
  agentId: string;
  origin: AgentOrigin;
  allowLocalRepositories: boolean;
  /** The hub's peer name, for the Web UI. */
  hubName: string;
}

export interface AgentListFilter {
  state?: AgentState | undefined;
  taskId?: string | undefined;
  agentType?: AgentType | undefined;
  limit: number;
  cursor?: string | undefined;
}

function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || Number.isNaN(createdAt.getTime()))
    throw new DomainError('invalid', 'invalid_cursor', 'The cursor is not valid');
  return { createdAt, id };
}

export function createAgentService(deps: AgentServiceDeps) {
  const { prisma, temporal } = deps;

  /**
   * Whether the caller may see the agent: not_found unknown, forbidden another workspace's; a hub learns nothing of
   * agents it did not spawn.
   */
  function checkOwner<T extends { workspaceId: string; originConnectionId: string | null }>(
    agentId: string,
    row: T | null,
    owner: Owner,
  ): T {
    const visible = row && ('workspaceId' in owner || row.originConnectionId === owner.connectionId);
    if (!row || !visible) throw new DomainError('not_found', 'not_found', `No agent ${agentId}`);
    if ('workspaceId' in owner && row.workspaceId !== owner.workspaceId)
      throw new DomainError('forbidden', 'forbidden', `Agent ${agentId} belongs to another workspace`);
    return row;
  }

  /** The caller's agent, as little of it as ownership needs. */
  async function ownership(agentId: string, owner: Owner) {
    return checkOwner(
      agentId,
      await prisma.agent.findUnique({ where: { id: agentId }, select: OWNERSHIP_SELECT }),
      owner,
    );
  }

  /** The caller's agent's whole row, with its result. */
  async function ownedRow(agentId: string, owner: Owner): Promise<AgentRow> {
    return checkOwner(
      agentId,
      await prisma.agent.findUnique({ where: { id: agentId }, include: AGENT_ROW_INCLUDE }),
      owner,
    );
  }

  /**
   * The admission workflow's answer for a new agent, asked before its workflow starts so that the
   * workflow need not ask again: the host of its slot, or null when it waits (queued) or no answer
   * came in time (no worker yet). The workflow then asks itself, keeping the agent's place.
   */
  async function admittedHost(agentId: string, priority: number): Promise<string | null> {
    try {
      const answer = await temporal.withDeadline(Date.now() + ADMISSION_ANSWER_TIMEOUT_MS, () =>
        requestAdmission(temporal, deps.taskQueue, { agentId, priority }),
      );
      return answer.state === 'admitted' ? answer.hostId : null;
    } catch {
      return null;
    }
  }

  /**
   * Steers an agent that runs on a peer: the matching signed command through its connection, by a federationCommand
   * workflow (which records it and verifies the reply); the spoke's refusal comes back with its code.
   */
  async function steerRemote(agentId: string, action: SteeringAction): Promise<SteeringAnswer> {
    const remote = await prisma.federatedAgent.findUniqueOrThrow({
      where: { agentId },
      select: { connectionId: true, remoteAgentId: true },
    });
    if (!remote.remoteAgentId)
      throw new DomainError('conflict', 'not_started', `The peer has not named agent ${agentId} yet: try again`);
    const command = outboundCommand({
      connectionId: remote.connectionId,
      ...steeringCommand(remote.remoteAgentId, action),
    });
    const reply = await (
      await startFederationCommand(temporal, deps.taskQueue, command)
    )
      .result()
      .catch((error: unknown): never => {
        if (!(error instanceof WorkflowFailedError)) throw error;
        const cause = error.cause?.cause ?? error.cause;
        const why = cause instanceof Error ? cause.message : error.message;
        throw new DomainError('peer_failed', 'peer_failed', `The peer did not take ${command.commandType}: ${why}`);
      });
    if (reply.status === 'error' || !reply.result)
      throw refusalOf(reply.error?.code ?? 'peer_failed', reply.error?.message ?? 'the peer gave no answer');
    const { agentId: _remoteId, ...answer } = reply.result;
    return answer as SteeringAnswer;
  }

  const service = {
    /**
     * Starts an agentRun. For a hub's spawn, `agentId` is derived from its messageId (a replay is a
     * no-op) and `origin` names the connection, whose hub then hears of every state change; a task
     * whose live agent another origin spawned is refused (task_busy).
     */
    async spawn(
      workspaceId: string,
      request: SpawnAgentRequest,
      federated: PeerSpawn | null = null,
      parentAgentId: string | null = null,
    ): Promise<SpawnOutcome> {
      const agentId = federated?.agentId ?? `agent-${randomUUID()}`;
      const diskMb = request.options.resources.diskMb;
      if (diskMb !== undefined && diskMb > deps.workspaceMaxMb) {
        throw new DomainError(
          'invalid',
          'resource_limit',
          `options.resources.diskMb: at most ${deps.workspaceMaxMb} MB on this instance`,
        );
      }
      if (request.options.costBudgetUsd !== undefined && !priceOf(deps.modelPrices, request.options.model)) {
        throw new DomainError(
          'invalid',
          'unpriced_model',
          `options.costBudgetUsd: no price is configured for model ` +
            `${request.options.model}, so a cost budget cannot be enforced (see ` +
            `MODEL_PRICES)`,
        );
      }
      const delivery = request.options.delivery;
      // A hub's agent is delivered by the hub, with its own credentials: a peer never pushes with this instance's.
      if (federated && delivery)
        throw new DomainError('invalid', 'delivery_not_allowed', 'options.delivery: the hub delivers the result');
      const allowLocal = federated?.allowLocalRepositories ?? true;
      try {
        await admitRepository(deps.repositories, request.context.repository, { allowLocal });
      } catch (error) {
        if (error instanceof RepositoryRefused) throw new DomainError('invalid', error.code, error.message);
        throw error;
      }
      if (delivery?.remote)
        await admitRepository(deps.repositories, delivery.remote, { allowLocal }).catch((error: unknown) => {
          if (error instanceof RepositoryRefused)
            throw new DomainError('invalid', error.code, `options.delivery.remote: ${error.message}`);
          throw error;
        });
      const known = await prisma.agent.findUnique({ where: { id: agentId } });
      if (known) return { agentId, status: known.state as AgentState, existing: true, createdAt: known.createdAt };
      const initialState = 'spawning';
      let created;
      try {
        created = await prisma.agent.create({
          data: {
            id: agentId,
            workspaceId,
            taskId: request.taskId,
            agentType: request.agentType,
            state: initialState,
            context: request.context,
            options: request.options,
            originConnectionId: federated?.origin.connectionId ?? null,
            originMessageId: federated?.origin.spawnMessageId ?? null,
            parentAgentId,
            events: { create: firstEvent(initialState) },
          },
        });
      } catch (error) {
        // The partial unique index allows one live agent per task: return that one.
        if (!isUniqueViolation(error)) throw error;
        const live = await prisma.agent.findFirst({
          where: { workspaceId, taskId: request.taskId, state: { notIn: [...TERMINAL_STATES] } },
        });
        if (!live) throw new DomainError('conflict', 'conflict', 'Another spawn for this task is in progress; retry');
        // A hub may follow the live agent only if it spawned it itself.
        if (federated && live.originConnectionId !== federated.origin.connectionId)
          throw new DomainError('conflict', 'task_busy', `another agent is live for task ${request.taskId}`);
        return { agentId: live.id, status: live.state as AgentState, existing: true, createdAt: live.createdAt };
      }
      // One request to the admission workflow per spawn: its answer travels with the start.
      const admittedOn = await admittedHost(agentId, request.priority);
      const input: AgentRunInput = {
        agentId,
        workspaceId,
        taskId: request.taskId,
        agentType: request.agentType,
        context: request.context,
        options: request.options,
        initialState,
        priority: request.priority,
        ...(admittedOn ? { admittedOn } : {}),
        ...(federated ? { origin: federated.origin } : {}),
      };
      const started = await startAgentWorkflow(temporal, prisma, {
        workflowType: AGENT_RUN_WORKFLOW,
        taskQueue: deps.taskQueue,
        agentId,
        args: [input],
        taskId: request.taskId,
        agentType: request.agentType,
        workspaceId,
        state: initialState,
        priority: request.priority,
        context: request.context,
        limits: request.options,
        ...(federated ? { requestedByHub: federated.hubName } : {}),
        ...(parentAgentId ? { parentAgentId } : {}),
      });
      return { agentId, status: admittedOn ? 'spawning' : 'queued', existing: !started, createdAt: created.createdAt };
    },

    /** Checks the caller owns the agent (not_found / forbidden otherwise), reading only what that needs. */
    async owned(agentId: string, owner: Owner): Promise<void> {
      await ownership(agentId, owner);
    },

    /** The caller's agent with its live status when it is still running. */
    async view(agentId: string, owner: Owner): Promise<{ row: AgentRow; live?: LiveStatus }> {
      const row = await ownedRow(agentId, owner);
      if (isTerminalState(row.state)) return { row };
      // The query reads workflow memory; without a worker to answer it, the row is the answer.
      const handle = temporal.workflow.getHandle(agentId);
      const live: LiveStatus | undefined = await temporal
        .withDeadline(Date.now() + LIVE_STATUS_DEADLINE_MS, async (): Promise<LiveStatus> =>
          row.remote
            ? { kind: 'remote', status: await handle.query(federatedAgentStatusQuery) }
            : { kind: 'local', status: await handle.query(agentStatusQuery) },
        )
        .catch(() => undefined);
      return live ? { row, live } : { row };
    },

    /**
     * The result branch as a git bundle, for the agent's workspace: refused while the agent runs, when it changed
     * nothing or its bundle was not stored, and once the retention removed it.
     */
    async resultBundle(agentId: string, owner: Owner): Promise<{ data: Uint8Array; commitSha: string }> {
      const { state } = await ownership(agentId, owner);
      const result = await prisma.agentResult.findUnique({
        where: { agentId },
        select: { commitSha: true, bundleStatus: true, branch: true },
      });
      if (!isTerminalState(state) || !result)
        throw new DomainError('conflict', 'not_finished', `Agent ${agentId} has no result yet: it is ${state}`);
      if (!result.commitSha)
        throw new DomainError(
          'not_found',
          'no_changes',
          `Agent ${agentId} changed nothing: there is no commit to fetch`,
        );
      const stored =
        result.bundleStatus === 'stored'
          ? await prisma.agentResultBundle.findUnique({ where: { agentId }, select: { data: true, commitSha: true } })
          : null;
      if (stored) return stored;
      if (result.bundleStatus === 'pruned' || result.bundleStatus === 'stored')
        throw new DomainError('gone', 'pruned', `The result bundle of ${agentId} was removed by the retention`);
      const why = result.bundleStatus === 'too_large' ? 'it was too large to store' : 'it could not be made';
      throw new DomainError(
        'not_found',
        'no_bundle',
        `Agent ${agentId} has no result bundle (${why}): fetch ${result.branch ?? 'its branch'} from its workspace`,
      );
    },

    /** The workspace's agents, newest first, a page at a time. */
    async list(
      workspaceId: string,
      filter: AgentListFilter,
    ): Promise<{ rows: AgentListRow[]; nextCursor: string | null }> {
      const after = filter.cursor ? decodeCursor(filter.cursor) : null;
      const rows = await prisma.agent.findMany({
        where: {
          workspaceId,
          ...(filter.state ? { state: filter.state } : {}),
          ...(filter.taskId ? { taskId: filter.taskId } : {}),
          ...(filter.agentType ? { agentType: filter.agentType } : {}),
          ...(after
            ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
            : {}),
        },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: filter.limit + 1,
        include: AGENT_LIST_INCLUDE,
      });
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return { rows: page, nextCursor: rows.length > filter.limit && last ? encodeCursor(last) : null };
    },

    /**
     * A follow-up of the caller's finished agent: a new agent of the same type on the same task (or `taskId`), started
     * on its parent's result with the parent's outcome in its instructions, and linked to it both ways.
     */
    async continueFrom(agentId: string, workspaceId: string, request: ContinueAgentRequest): Promise<SpawnOutcome> {
      const row = await ownedRow(agentId, { workspaceId });
      if (row.remote)
        throw new DomainError(
          'invalid',
          'not_supported',
          `Agent ${agentId} ran on a peer: a follow-up starts from a result on this instance only`,
        );
      if (!isTerminalState(row.state))
        throw new DomainError('conflict', 'not_finished', `Agent ${agentId} has not finished: it is ${row.state}`);
      const { result } = row;
      if (result?.commitSha && result.bundleStatus !== 'stored')
        throw new DomainError(
          'conflict',
          'no_result',
          `Agent ${agentId}'s result is not stored here (${result.bundleStatus ?? 'no bundle'}): ` +
            'a follow-up cannot start from it',
        );
      const parent = {
        agentId,
        taskId: row.taskId,
        state: row.state,
        context: row.context as unknown as AgentContext,
        result: result ? { summary: result.summary, commitSha: result.commitSha } : null,
      };
      const followUp: SpawnAgentRequest = {
        taskId: request.taskId ?? row.taskId,
        agentType: row.agentType as AgentType,
        context: followUpContext(parent, request.instructions),
        priority: DEFAULT_PRIORITY,
        options: request.options ?? (row.options as unknown as AgentOptions),
      };
      return await service.spawn(workspaceId, followUp, null, agentId);
    },

    /**
     * Sends a steering update (a message, an approval's decision, pause or resume) to the caller's live agent and
     * returns the run's answer; a refusal is a DomainError with the run's reason.
     */
    async steer(agentId: string, owner: Owner, action: SteeringAction): Promise<SteeringAnswer> {
      const row = await ownership(agentId, owner);
      if (isTerminalState(row.state))
        throw new DomainError('conflict', 'already_finished', `Agent ${agentId} has already finished (${row.state})`);
      if (row.remote) return await steerRemote(agentId, action);
      try {
        return await updateRun(temporal.workflow.getHandle(agentId), action);
      } catch (error) {
        throw steeringError(agentId, error);
      }
    },

    /**
     * Signals the agent's workflow to stop: agentRun cancels its run, federatedSpawn sends agent.kill to
     * the peer. `remoteOnly`: only an agent that runs on a peer (the hub's federation endpoint).
     */
    async kill(agentId: string, owner: Owner, reason: string, { remoteOnly = false } = {}): Promise<void> {
      const row = await ownership(agentId, owner);
      if (remoteOnly && !row.remote) throw new DomainError('not_found', 'not_found', `No federated agent ${agentId}`);
      if (isTerminalState(row.state))
        throw new DomainError('conflict', 'already_finished', `Agent ${agentId} has already finished (${row.state})`);
      try {
        await temporal.workflow.getHandle(agentId).signal(killAgentSignal, { reason });
      } catch (error) {
        if (error instanceof WorkflowNotFoundError)
          throw new DomainError('conflict', 'already_finished', `Agent ${agentId} has already finished`);
        throw error;
      }
    },
  };
  return service;
}

export type AgentService = ReturnType<typeof createAgentService>;
