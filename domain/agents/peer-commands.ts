import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { signingKey, type IdentityHolder } from '../../federation/identity';
import {
  checkIncomingCommand,
  FederationRejection,
  refusal,
  signedReply,
  type ConnectionWithKeys,
  type IncomingRequest,
  type SignedMessageResponse,
} from '../../federation/incoming';
import { CANCELLED_SPAWN, type CommandEnvelope, type CommandReply } from '../../federation/messages';
import type { Logger } from '../../platform/logger';
import { isUniqueViolation, Prisma, type FederationCommand, type PrismaClient } from '../../prisma/client';
import { type AgentState, type AgentType, DEFAULT_PRIORITY, isTerminalState } from '../../shared/vocabulary';
import {
  AgentRefPayloadSchema,
  ApprovalPayloadSchema,
  MessagePayloadSchema,
  ResultPiecePayloadSchema,
  type ResultPiece,
  KillPayloadSchema,
  localOptionsFrom,
  SpawnCommandPayloadSchema,
} from '../../shared/federated-agent-schemas';
import type { StatusReplyResult } from '../../shared/federated-agent-schemas';
import { DomainError } from '../errors';
import type { AgentRow, AgentService, LiveStatus } from './agent-service';
import { costOf, resultOf, usageOf } from './agent-usage';
import { describeIssues } from '../../shared/zod-issues';

/** The most of a result bundle one agent.result reply carries (base64 makes it a third larger). */
export const RESULT_PIECE_BYTES = 1024 * 1024;

/**
 * The spoke side of federation: a COMMAND from a connected hub, verified in the documented order
 * (federation/incoming.ts) before anything runs, executed against the agent service in the
 * connection's workspace, recorded, and answered with a signed reply.
 */
export type CommandOutcome =
  { status: 'ok'; result: unknown } | { status: 'error'; error: { code: string; message: string } };

/** How long a concurrent duplicate waits for the first copy's reply before answering message_in_progress. */
const DUPLICATE_WAIT_MS = 15_000;
/** A message still unanswered after this was abandoned (its process died mid-command): it may run again. */
const ABANDONED_AFTER_MS = 5 * 60_000;

/**
 * The agent.status result (FED-010's shape plus optional additions). The state is terminal only
 * once the row is: the result is stored before that, so a terminal answer always carries it.
 */
export function statusResult(row: AgentRow, live?: LiveStatus): StatusReplyResult {
  const local = live?.kind === 'local' ? live.status : undefined;
  const state = (
    isTerminalState(row.state) || !local || isTerminalState(local.state) ? row.state : local.state
  ) as AgentState;
  return {
    agentId: row.id,
    taskId: row.taskId,
    status: state,
    spawnedAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    progress: {
      turn: local?.turn ?? row.turn,
      lastTool: local?.lastTool ?? row.lastTool,
      usage: usageOf(row, local),
      costUsd: costOf(row, local),
      updatedAt: local?.updatedAt ?? row.updatedAt.toISOString(),
      ...(local?.pendingApproval ? { pendingApproval: local.pendingApproval } : {}),
    },
    agentType: row.agentType as AgentType,
    error: local?.error ?? row.error,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    ...(isTerminalState(state) ? { result: resultOf(row) } : {}),
  };
}

/** The answer to agent.kill by spawnMessageId: the spawn's agent and its state, or none (`never_started`). */
const spawnKilled = (spawnMessageId: string, agentId: string | null, state: string): CommandOutcome => ({
  status: 'ok',
  result: { spawnMessageId, agentId, state },
});

/** agent ids for federated spawns derive from the connection and messageId: a replayed spawn is a no-op. */
export function federatedAgentId(connectionId: string, messageId: string): string {
  const hex = createHash('sha256').update(`${connectionId}:${messageId}`).digest('hex');
  return `agent-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export interface PeerCommandDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  agents: AgentService;
  /** host[:port] of PUBLIC_URL. */
  authority: string;
  rateLimitPerMinute: number;
  log: Logger;
}

export function createPeerCommandHandler(deps: PeerCommandDeps) {
  const { prisma, agents } = deps;

  /** Runs an admitted command in the connection's workspace; failures become an error outcome for the signed reply. */
  async function execute(connection: ConnectionWithKeys, envelope: CommandEnvelope): Promise<CommandOutcome> {
    const workspaceId = connection.workspaceId;
    if (!workspaceId)
      return { status: 'error', error: { code: 'no_workspace', message: 'the connection belongs to no workspace' } };
    try {
      const owner = { connectionId: connection.id };
      switch (envelope.commandType) {
        case 'agent.spawn': {
          const { options, ...payload } = SpawnCommandPayloadSchema.parse(envelope.payload);
          const agentId = federatedAgentId(connection.id, envelope.messageId);
          const spawned = await agents.spawn(
            workspaceId,
            { ...payload, priority: payload.priority ?? DEFAULT_PRIORITY, options: localOptionsFrom(options) },
            {
              agentId,
              origin: { connectionId: connection.id, spawnMessageId: envelope.messageId },
              allowLocalRepositories: connection.allowLocalRepositories,
              hubName: connection.peerName,
            },
          );
          return {
            status: 'ok',
            result: {
              agentId: spawned.agentId,
              state: spawned.status,
              spawnedAt: spawned.createdAt.toISOString(),
              existing: spawned.existing,
            },
          };
        }
        case 'agent.status': {
          const { agentId } = AgentRefPayloadSchema.parse(envelope.payload);
          const { row, live } = await agents.view(agentId, owner);
          return { status: 'ok', result: statusResult(row, live) };
        }
        case 'agent.kill': {
          const target = KillPayloadSchema.parse(envelope.payload);
          const reason = `killed by ${connection.peerName} (${connection.peerInstanceId})`;
          if ('spawnMessageId' in target) return await killSpawn(connection, target.spawnMessageId, reason);
          await agents.kill(target.agentId, owner, reason);
          return { status: 'ok', result: { agentId: target.agentId, state: 'killing' } };
        }
        case 'agent.result': {
          const { agentId, offset } = ResultPiecePayloadSchema.parse(envelope.payload);
          const bundle = await agents.resultBundle(agentId, owner);
          const piece = Buffer.from(bundle.data).subarray(offset, offset + RESULT_PIECE_BYTES);
          const result: ResultPiece = {
            agentId,
            commitSha: bundle.commitSha,
            sizeBytes: bundle.data.length,
            offset,
            data: piece.toString('base64'),
          };
          return { status: 'ok', result };
        }
        // Steering (additions, issue 24): only an agent this connection's hub spawned; the run's refusal is the reply.
        case 'agent.message': {
          const { agentId, text } = MessagePayloadSchema.parse(envelope.payload);
          const answer = await agents.steer(agentId, owner, { kind: 'message', text });
          return { status: 'ok', result: { agentId, ...answer } };
        }
        case 'agent.approval': {
          const { agentId, ...decision } = ApprovalPayloadSchema.parse(envelope.payload);
          const answer = await agents.steer(agentId, owner, { kind: 'approval', ...decision });
          return { status: 'ok', result: { agentId, ...answer } };
        }
        case 'agent.pause':
        case 'agent.resume': {
          const { agentId } = AgentRefPayloadSchema.parse(envelope.payload);
          const kind = envelope.commandType === 'agent.pause' ? 'pause' : 'resume';
          const answer = await agents.steer(agentId, owner, { kind });
          return { status: 'ok', result: { agentId, ...answer } };
        }
        default:
          return {
            status: 'error',
            error: { code: 'unknown_command', message: `no handler for ${envelope.commandType}` },
          };
      }
    } catch (error) {
      if (error instanceof z.ZodError)
        return { status: 'error', error: { code: 'invalid_payload', message: describeIssues(error) } };
      if (error instanceof DomainError) return { status: 'error', error: { code: error.code, message: error.message } };
      throw error;
    }
  }

  /** Claims an inbound messageId with its row; null when another copy (or a kill that came first) holds it. */
  async function claimMessage(
    data: Omit<Prisma.FederationCommandUncheckedCreateInput, 'id' | 'direction'>,
  ): Promise<FederationCommand | null> {
    return prisma.federationCommand
      .create({ data: { id: randomUUID(), direction: 'inbound', ...data } })
      .catch((error: unknown) => {
        if (isUniqueViolation(error)) return null;
        throw error;
      });
  }

  /**
   * agent.kill by the messageId of a spawn whose reply the hub never got. A spawn not taken yet is
   * cancelled for good (its messageId is claimed, so a copy still on its way is refused); a spawn taken
   * (or being taken right now) has its agent killed, or named with its final state when it ended.
   */
  async function killSpawn(
    connection: ConnectionWithKeys,
    spawnMessageId: string,
    reason: string,
  ): Promise<CommandOutcome> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const claimed =
        (await claimMessage({
          connectionId: connection.id,
          messageId: spawnMessageId,
          commandType: 'agent.spawn',
          status: CANCELLED_SPAWN,
          error: reason,
          completedAt: new Date(),
        })) !== null;
      if (claimed) return spawnKilled(spawnMessageId, null, 'never_started');
      const spawn = await prisma.federationCommand.findUnique({
        where: {
          connectionId_direction_messageId: {
            connectionId: connection.id,
            direction: 'inbound',
            messageId: spawnMessageId,
          },
        },
      });
      if (spawn?.status === CANCELLED_SPAWN) return spawnKilled(spawnMessageId, null, 'never_started');
      const reply =
        spawn === null
          ? 'free'
          : spawn.reply === null
            ? await replyOfFirstCopy(connection.id, spawnMessageId)
            : (spawn.reply as unknown as CommandReply);
      // The spawn's first copy failed and let go of its messageId: claim it again.
      if (reply === 'free') continue;
      if (reply === null) break;
      if (reply.status === 'error') return spawnKilled(spawnMessageId, null, 'never_started');
      return await killTakenSpawn(connection, spawnMessageId, reason);
    }
    return {
      status: 'error',
      error: { code: 'message_in_progress', message: 'the spawn is still being taken; ask again' },
    };
  }

  async function killTakenSpawn(
    connection: ConnectionWithKeys,
    spawnMessageId: string,
    reason: string,
  ): Promise<CommandOutcome> {
    const agentId = federatedAgentId(connection.id, spawnMessageId);
    try {
      await agents.kill(agentId, { connectionId: connection.id }, reason);
      return spawnKilled(spawnMessageId, agentId, 'killing');
    } catch (error) {
      if (!(error instanceof DomainError) || error.code !== 'already_finished') throw error;
      const row = await prisma.agent.findUniqueOrThrow({ where: { id: agentId }, select: { state: true } });
      return spawnKilled(spawnMessageId, agentId, row.state);
    }
  }

  /**
   * Claims the messageId and runs the command: the signed reply, or null when another copy holds the
   * claim. An unexpected failure frees the messageId again, so that a retry runs it (every command is
   * idempotent), and answers 500.
   */
  async function runOnce(
    connection: ConnectionWithKeys,
    envelope: CommandEnvelope,
    bodyHash: string,
    started: number,
  ): Promise<SignedMessageResponse | null> {
    const record = await claimMessage({
      connectionId: connection.id,
      messageId: envelope.messageId,
      commandType: envelope.commandType,
      bodyHash,
      status: 'running',
      payload: envelope.payload as Prisma.InputJsonObject,
    });
    if (record === null) return null;
    let outcome: CommandOutcome;
    try {
      outcome = await execute(connection, envelope);
    } catch (error) {
      await prisma.federationCommand.delete({ where: { id: record.id } }).catch(() => undefined);
      throw error;
    }
    const reply: CommandReply = {
      messageId: randomUUID(),
      inReplyTo: envelope.messageId,
      instanceId: deps.identity.current().instanceId,
      requestNonce: envelope.nonce,
      ...outcome,
      timestamp: new Date().toISOString(),
    };
    await prisma.federationCommand.update({
      where: { id: record.id },
      data: {
        status: outcome.status === 'ok' ? 'succeeded' : 'failed',
        reply: reply as unknown as Prisma.InputJsonObject,
        ...(outcome.status === 'error' ? { errorCode: outcome.error.code, error: outcome.error.message } : {}),
        completedAt: new Date(),
        durationMs: Date.now() - started,
      },
    });
    return signedReply(reply, signingKey(deps.identity.current()));
  }

  /**
   * A copy of a message that is being handled: wait for the first copy's reply and answer the same.
   * null when the first copy failed and freed its messageId (the caller runs it), or gave up waiting.
   */
  async function replyOfFirstCopy(connectionId: string, messageId: string): Promise<CommandReply | 'free' | null> {
    const until = Date.now() + DUPLICATE_WAIT_MS;
    for (;;) {
      const first = await prisma.federationCommand.findUnique({
        where: { connectionId_direction_messageId: { connectionId, direction: 'inbound', messageId } },
      });
      if (!first) return 'free';
      if (first.reply !== null) return first.reply as unknown as CommandReply;
      if (Date.now() - first.createdAt.getTime() > ABANDONED_AFTER_MS) {
        await prisma.federationCommand.deleteMany({ where: { id: first.id, reply: { equals: Prisma.AnyNull } } });
        return 'free';
      }
      if (Date.now() > until) return null;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * Answers a refused command, unsigned. Only a refusal of a sender that proved it holds a peer's key
   * is recorded; anyone else's (garbage, forgeries) is counted in the metric only, so an unauthenticated
   * caller can make this instance store nothing.
   */
  async function refuse(rejection: FederationRejection, started = Date.now()): Promise<SignedMessageResponse> {
    if (rejection.connectionId === null) {
      deps.log.debug({ code: rejection.code }, 'unauthenticated federation command refused');
      return refusal(rejection);
    }
    await prisma.federationCommand.create({
      data: {
        id: randomUUID(),
        direction: 'inbound',
        connectionId: rejection.connectionId,
        status: 'rejected',
        errorCode: rejection.code,
        error: rejection.message,
        completedAt: new Date(),
        durationMs: Date.now() - started,
      },
    });
    deps.log.warn({ code: rejection.code, connectionId: rejection.connectionId }, 'federation command rejected');
    return refusal(rejection);
  }

  return {
    /**
     * POST /api/v1/federation/incoming/command: verify, run, record, answer signed; every refusal is
     * recorded too. A message runs once: a copy that arrives while it runs waits for its reply and
     * answers the same; a copy whose first run failed unexpectedly (which frees the messageId) runs it.
     */
    async handle(request: IncomingRequest): Promise<SignedMessageResponse> {
      const started = Date.now();
      try {
        const admission = await checkIncomingCommand(
          { prisma, authority: deps.authority, rateLimitPerMinute: deps.rateLimitPerMinute },
          request,
        );
        if (admission.kind === 'repeat')
          return signedReply(admission.reply as CommandReply, signingKey(deps.identity.current()));
        const { connection, envelope, bodyHash } = admission;
        if (admission.kind === 'new') {
          const answered = await runOnce(connection, envelope, bodyHash, started);
          if (answered) return answered;
        }
        for (let attempt = 0; attempt < 3; attempt++) {
          const first = await replyOfFirstCopy(connection.id, envelope.messageId);
          if (first === null) break;
          if (first !== 'free') return signedReply(first, signingKey(deps.identity.current()));
          const answered = await runOnce(connection, envelope, bodyHash, started);
          if (answered) return answered;
        }
        throw new FederationRejection(
          409,
          'message_in_progress',
          'this message is still being processed; retry',
          connection.id,
        );
      } catch (error) {
        if (!(error instanceof FederationRejection)) throw error;
        return refuse(error, started);
      }
    },

    refuse,
  };
}

export type PeerCommandHandler = ReturnType<typeof createPeerCommandHandler>;
