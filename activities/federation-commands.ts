import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  INCOMING_COMMAND_PATH,
  PeerError,
  postSigned,
  refusalCode,
  verifyReply,
  type PeerTransport,
  type RawReply,
} from '../federation/client';
import { signingKey, type IdentityHolder } from '../federation/identity';
import { bodyHash, commandBody, outboundCommand, type CommandReply } from '../federation/messages';
import { SignatureError } from '../federation/signatures';
import { Prisma, type PrismaClient } from '../prisma/client';
import { isTerminalState, type AgentState, type ResultBundleStatus } from '../shared/vocabulary';
import type { AgentContext } from '../shared/agent-schemas';
import type { RepositoryPolicy } from '../platform/repository-policy';
import { resultBranchFor } from '../sandbox-runtime/agent-containers';
import { RESULT_BUNDLE_MAX_BYTES } from '../sandbox-runtime/git-bundle';
import type { RepositoryCache } from '../sandbox-runtime/repository-cache';
import { rebundleResult } from '../sandbox-runtime/result-delivery';
import { type RemoteProgress, ResultPieceSchema, StatusReplyResultSchema } from '../shared/federated-agent-schemas';
import {
  FEDERATION_FAILURES,
  type OutboundCommand,
  type VerifiedCommand,
} from '../workflows/federation-command/contract';
import { storeBundleStatement, storeResult } from '../domain/agents/agent-events';
import { recordContact } from '../domain/agents/federated-contact';

/**
 * The hub's side of COMMANDs: send one (signed, recorded, a retry reuses the messageId and the exact
 * body), verify the peer's signed reply (its own step), and ask a peer for the status of an agent it
 * runs for us. The reply bytes wait in the command's row between sending and verifying, so the
 * workflow history carries ids, never replies.
 */
const {
  peerUnreachable: PEER_UNREACHABLE,
  commandRefused: COMMAND_REFUSED,
  replyNotVerified: REPLY_NOT_VERIFIED,
  connectionInactive: CONNECTION_INACTIVE,
} = FEDERATION_FAILURES;

/** Results at most this large travel through the workflow history; larger ones stay in the row. */
const MAX_SUMMARY_BYTES = 4096;

export interface FederationCommandDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  peers: PeerTransport;
  /** Where a received result's base comes from (the task's repository, under this instance's policy). */
  repositories: RepositoryPolicy;
  repositoryCache: RepositoryCache | null;
}

export type { VerifiedCommand } from '../workflows/federation-command/contract';

/** What asking the spoke about an agent found. */
export type RemoteStatusPoll =
  | {
      kind: 'status';
      state: AgentState;
      startedAt: string | null;
      progress: RemoteProgress;
      error: string | null;
      resultFetched: boolean;
      contactAt: string;
    }
  /** The spoke answered, signed, that it has no such agent for us. */
  | { kind: 'unknown_agent'; message: string }
  /** The connection is not ACTIVE (on our side, or the spoke refused it as such). */
  | { kind: 'connection_inactive'; status: string }
  /** The spoke refused the request before verifying it, for another reason. */
  | { kind: 'refused'; code: string; message: string };

/** Refusals that say "not now" rather than "never". */
function isTransient(status: number, code: string): boolean {
  return status >= 500 || status === 429 || code === 'message_in_progress';
}

type ConnectionRow = Prisma.FederationConnectionGetPayload<{ include: { keys: true } }>;

export function createFederationCommandActivities(deps: FederationCommandDeps) {
  const { prisma } = deps;

  async function activeConnection(connectionId: string): Promise<ConnectionRow> {
    const connection = await prisma.federationConnection.findUniqueOrThrow({
      where: { id: connectionId },
      include: { keys: true },
    });
    if (connection.status !== 'ACTIVE') {
      throw ApplicationFailure.create({
        message: `the connection to ${connection.peerName} is ${connection.status}`,
        type: CONNECTION_INACTIVE,
        nonRetryable: true,
        details: [connection.status],
      });
    }
    return connection;
  }

  /**
   * Signs and sends; returns the row id with the raw reply stored on it. Retryable while the peer does not answer or is
   * busy.
   */
  async function deliver(command: OutboundCommand): Promise<{ recordId: string; connection: ConnectionRow }> {
    const connection = await activeConnection(command.connectionId);
    const identity = deps.identity.current();
    const body = commandBody({
      messageId: command.messageId,
      instanceId: identity.instanceId,
      commandType: command.commandType,
      payload: command.payload,
      timestamp: command.timestamp,
      nonce: command.nonce,
    });
    const record = await prisma.federationCommand.upsert({
      where: {
        connectionId_direction_messageId: {
          connectionId: connection.id,
          direction: 'outbound',
          messageId: command.messageId,
        },
      },
      create: {
        id: randomUUID(),
        direction: 'outbound',
        connectionId: connection.id,
        messageId: command.messageId,
        commandType: command.commandType,
        bodyHash: bodyHash(body),
        status: 'sending',
        attempts: 1,
        payload: command.payload as Prisma.InputJsonObject,
      },
      update: { status: 'sending', attempts: { increment: 1 } },
    });
    let reply: RawReply;
    try {
      reply = await postSigned(
        deps.peers,
        new URL(INCOMING_COMMAND_PATH, connection.peerUrl).toString(),
        body,
        signingKey(identity),
      );
    } catch (error) {
      const code = error instanceof PeerError ? error.code : 'peer_error';
      await prisma.federationCommand.update({
        where: { id: record.id },
        data: { errorCode: code, error: error instanceof Error ? error.message : String(error) },
      });
      throw ApplicationFailure.retryable(`${connection.peerName} did not answer (${code})`, PEER_UNREACHABLE);
    }
    if (reply.status !== 200) {
      // Refusals come before the peer verified anything, so they are unsigned: recorded, not trusted.
      const code = refusalCode(reply.body);
      if (isTransient(reply.status, code)) {
        await prisma.federationCommand.update({
          where: { id: record.id },
          data: { errorCode: code, error: `the peer answered ${reply.status}` },
        });
        throw ApplicationFailure.retryable(
          `${connection.peerName} answered ${reply.status} (${code})`,
          PEER_UNREACHABLE,
        );
      }
      await finish(record, { status: 'rejected', errorCode: code, error: `the peer answered ${reply.status}` });
      throw ApplicationFailure.create({
        message: `${connection.peerName} refused ${command.commandType} (${reply.status} ${code})`,
        type: COMMAND_REFUSED,
        nonRetryable: true,
        details: [code],
      });
    }
    const rawReply = { status: reply.status, headers: reply.headers, body: reply.body.toString('base64') };
    await prisma.federationCommand.update({
      where: { id: record.id },
      data: { status: 'delivered', rawReply, errorCode: null, error: null },
    });
    return { recordId: record.id, connection };
  }

  async function finish(
    record: { id: string; createdAt: Date },
    data: Prisma.FederationCommandUpdateInput,
  ): Promise<void> {
    const completedAt = new Date();
    await prisma.federationCommand.update({
      where: { id: record.id },
      data: { ...data, completedAt, durationMs: completedAt.getTime() - record.createdAt.getTime() },
    });
  }

  /** Verifies the stored reply against the peer's keys and this very message; records the outcome. */
  async function verify(command: Pick<OutboundCommand, 'connectionId' | 'messageId' | 'nonce'>): Promise<CommandReply> {
    const record = await prisma.federationCommand.findUniqueOrThrow({
      where: {
        connectionId_direction_messageId: {
          connectionId: command.connectionId,
          direction: 'outbound',
          messageId: command.messageId,
        },
      },
      include: { connection: { include: { keys: true } } },
    });
    const connection = record.connection;
    const stored = record.rawReply as { status: number; headers: Record<string, string>; body: string } | null;
    if (!connection || !stored)
      throw ApplicationFailure.nonRetryable(`no reply was stored for message ${command.messageId}`, REPLY_NOT_VERIFIED);
    let reply: CommandReply;
    try {
      reply = verifyReply(
        { status: stored.status, headers: stored.headers, body: Buffer.from(stored.body, 'base64') },
        connection.keys,
        { messageId: command.messageId, nonce: command.nonce, instanceId: connection.peerInstanceId },
      );
    } catch (error) {
      const code = error instanceof SignatureError ? error.code : 'reply_invalid';
      await finish(record, {
        status: 'failed',
        errorCode: code,
        error: error instanceof Error ? error.message : String(error),
        rawReply: Prisma.DbNull,
      });
      throw ApplicationFailure.create({
        message: `the reply of ${connection.peerName} did not verify (${code})`,
        type: REPLY_NOT_VERIFIED,
        nonRetryable: true,
        details: [code],
      });
    }
    await finish(record, {
      status: reply.status === 'ok' ? 'succeeded' : 'failed',
      reply: reply as unknown as Prisma.InputJsonObject,
      rawReply: Prisma.DbNull,
      ...(reply.status === 'error'
        ? { errorCode: reply.error?.code ?? 'peer_error', error: reply.error?.message ?? 'failed' }
        : {}),
    });
    return reply;
  }

  /** Ends a command that was never answered (no attempt will follow): its row says failed, with the last reason. */
  async function failUnanswered(connectionId: string, messageId: string, reason: string): Promise<void> {
    const record = await prisma.federationCommand.findUnique({
      where: { connectionId_direction_messageId: { connectionId, direction: 'outbound', messageId } },
    });
    if (record?.status === 'sending')
      await finish(record, { status: 'failed', errorCode: record.errorCode ?? 'peer_unreachable', error: reason });
  }

  return {
    /** Ends a command that was never answered: its row says failed, with the last reason. */
    async recordCommandFailure(input: { connectionId: string; messageId: string; reason: string }): Promise<void> {
      await failUnanswered(input.connectionId, input.messageId, input.reason);
    },

    /** Sends a COMMAND (its row records every attempt); the reply waits in the row for verifyCommandReply. */
    async sendCommand(command: OutboundCommand): Promise<{ commandId: string }> {
      return { commandId: (await deliver(command)).recordId };
    },

    /** Verifies the peer's signed reply to a sent COMMAND: a step of its own, so the Web UI shows it. */
    async verifyCommandReply(
      command: Pick<OutboundCommand, 'connectionId' | 'messageId' | 'nonce'>,
    ): Promise<VerifiedCommand> {
      const reply = await verify(command);
      const result =
        typeof reply.result === 'object' &&
        reply.result !== null &&
        JSON.stringify(reply.result).length <= MAX_SUMMARY_BYTES
          ? (reply.result as Record<string, unknown>)
          : null;
      return { status: reply.status, error: reply.error ?? null, result };
    },

    /**
     * Fetches the result bundle of an agent the spoke ran for us (agent.result, piece by piece, each reply signed and
     * verified), checks it (one branch, at the commit the spoke reported, applying on the task's branch), bundles it
     * again as agent/<our agent id> and stores it: result.bundle then serves it here, and delivery can push it with
     * this instance's credentials. Answers the bundle's status; a spoke without a bundle or a bundle that does not
     * check is a status, never a failure of the run.
     */
    async fetchRemoteResult(input: { agentId: string }): Promise<ResultBundleStatus | null> {
      const { agentId } = input;
      const [remote, result, agent] = await Promise.all([
        prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } }),
        prisma.agentResult.findUnique({ where: { agentId }, select: { commitSha: true, bundleStatus: true } }),
        prisma.agent.findUniqueOrThrow({ where: { id: agentId }, select: { context: true } }),
      ]);
      if (!result?.commitSha || !remote.remoteAgentId) return null;
      if (result.bundleStatus === 'stored') return 'stored';
      const settle = async (status: ResultBundleStatus, reason?: string): Promise<ResultBundleStatus> => {
        if (reason) Context.current().log.warn('the remote result bundle was not stored', { agentId, reason });
        await prisma.agentResult.update({ where: { agentId }, data: { bundleStatus: status } });
        return status;
      };
      const pieces: Buffer[] = [];
      for (let offset = 0; ;) {
        const command = outboundCommand({
          connectionId: remote.connectionId,
          commandType: 'agent.result',
          payload: { agentId: remote.remoteAgentId, offset },
        });
        await deliver(command);
        const reply = await verify(command);
        if (reply.status !== 'ok')
          return await settle('unavailable', `the spoke has no bundle: ${reply.error?.code ?? 'error'}`);
        const piece = ResultPieceSchema.safeParse(reply.result);
        if (!piece.success || piece.data.commitSha !== result.commitSha || piece.data.offset !== offset)
          return await settle('unavailable', 'the spoke answered another bundle than its result');
        // The hub takes at most what a spoke stores.
        if (piece.data.sizeBytes > RESULT_BUNDLE_MAX_BYTES) return await settle('too_large');
        const data = Buffer.from(piece.data.data, 'base64');
        pieces.push(data);
        offset += data.length;
        Context.current().heartbeat(offset);
        if (offset >= piece.data.sizeBytes) break;
        if (data.length === 0) return await settle('unavailable', 'the spoke sent an empty piece before the end');
      }
      const context = agent.context as unknown as AgentContext;
      const branch = resultBranchFor(agentId);
      const checked = await rebundleResult({
        policy: deps.repositories,
        cache: deps.repositoryCache,
        origin: { repository: context.repository, branch: context.branch, allowLocal: true },
        bundle: {
          data: Buffer.concat(pieces),
          ref: `refs/heads/${resultBranchFor(remote.remoteAgentId)}`,
          commitSha: result.commitSha,
        },
        as: `refs/heads/${branch}`,
        signal: Context.current().cancellationSignal,
      });
      if ('failure' in checked) return await settle('unavailable', checked.reason);
      // The bundle and its status in one write: a retry after it finds the result stored and asks nothing again.
      const stored = { commitSha: result.commitSha, prerequisites: checked.prerequisites, data: checked.data };
      await prisma.$transaction([
        storeBundleStatement(prisma, agentId, stored),
        prisma.agentResult.update({ where: { agentId }, data: { bundleStatus: 'stored' } }),
      ]);
      return 'stored';
    },

    /**
     * Asks the spoke for an agent it runs for us (agent.status), verifies the signed reply and keeps
     * what it says; once the agent is terminal, its result (diff, commit, test output) is stored
     * with the hub's agent. One attempt per call: the workflow decides when to ask again.
     */
    async pollRemoteAgent(input: { agentId: string }): Promise<RemoteStatusPoll> {
      const remote = await prisma.federatedAgent.findUniqueOrThrow({
        where: { agentId: input.agentId },
        include: { connection: true },
      });
      if (remote.connection.status !== 'ACTIVE')
        return { kind: 'connection_inactive', status: remote.connection.status };
      if (!remote.remoteAgentId)
        throw ApplicationFailure.nonRetryable('the remote agent id is not known yet', 'RemoteAgentUnknown');
      const command = outboundCommand({
        connectionId: remote.connectionId,
        commandType: 'agent.status',
        payload: { agentId: remote.remoteAgentId },
      });
      try {
        await deliver(command);
      } catch (error) {
        // One attempt per poll: a status request that got no answer ends failed now (the next poll is a new message).
        if (error instanceof ApplicationFailure && error.type === PEER_UNREACHABLE)
          await failUnanswered(remote.connectionId, command.messageId, error.message);
        if (!(error instanceof ApplicationFailure) || error.type !== COMMAND_REFUSED) throw error;
        const detail = error.details?.[0];
        const code = typeof detail === 'string' ? detail : 'peer_error';
        if (code.startsWith('connection_'))
          return { kind: 'connection_inactive', status: code.slice('connection_'.length).toUpperCase() };
        return { kind: 'refused', code, message: error.message };
      }
      const reply = await verify(command);
      if (reply.status === 'error') {
        if (reply.error?.code === 'not_found') return { kind: 'unknown_agent', message: reply.error.message };
        return {
          kind: 'refused',
          code: reply.error?.code ?? 'peer_error',
          message: reply.error?.message ?? 'the spoke answered with an error',
        };
      }
      const status = StatusReplyResultSchema.safeParse(reply.result);
      if (!status.success)
        return {
          kind: 'refused',
          code: 'invalid_status_reply',
          message: 'the spoke sent a status the hub cannot read',
        };
      const { result, ...snapshot } = status.data;
      const contactAt = new Date();
      await prisma.federatedAgent.update({
        where: { agentId: input.agentId },
        data: {
          progress: snapshot.progress,
          ...(snapshot.startedAt ? { remoteStartedAt: new Date(snapshot.startedAt) } : {}),
        },
      });
      await recordContact(prisma, input.agentId, contactAt);
      const terminal = isTerminalState(snapshot.status);
      if (terminal && result) {
        // The spoke's cost estimate (an addition older spokes leave out) is the agent's, not the stored result's; its
        // bundle and delivery are the spoke's own, not this instance's.
        const { costUsd, bundle: _bundle, delivery: _delivery, ...stored } = result;
        if (costUsd !== undefined) await prisma.agent.update({ where: { id: input.agentId }, data: { costUsd } });
        const filesChanged = stored.diff.split('\n').filter((line) => line.startsWith('diff --git ')).length;
        await storeResult(prisma, input.agentId, stored, {
          type: 'result',
          branch: stored.branch,
          commitSha: stored.commitSha,
          filesChanged,
          testExitCode: stored.testExitCode,
          costUsd: costUsd ?? null,
        });
      }
      return {
        kind: 'status',
        state: snapshot.status,
        startedAt: snapshot.startedAt,
        progress: snapshot.progress,
        error: snapshot.error ?? null,
        resultFetched: terminal,
        contactAt: contactAt.toISOString(),
      };
    },
  };
}
