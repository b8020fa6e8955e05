import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { fetchPeerIdentity, PeerError, sendHandshake, type PeerTransport } from '../../federation/client';
import { publicIdentity, type IdentityHolder, type PublicIdentity } from '../../federation/identity';
import {
  checkSignatureAndDigest,
  consumeNonce,
  FederationRejection,
  parseBody,
  parseSignedRequest,
  type ConnectionWithKeys,
  type IncomingRequest,
} from '../../federation/incoming';
import type { ParsedSignature } from '../../federation/signatures';
import { SlidingWindowLimiter } from '../../platform/rate-window';
import { keyValidAt, outboundCommand, PublicIdentitySchema, type CommandType } from '../../federation/messages';
import { startFederationCommand } from '../../temporal/federation-command-client';
import type { Logger } from '../../platform/logger';
import type { FederationCommand, PrismaClient } from '../../prisma/client';
import { DomainError } from '../errors';
import { applyRotation, createConnection, renewConnection } from './key-store';
import { describeIssues } from '../../shared/zod-issues';

/**
 * The federation connection state machine: PENDING -> ACTIVE <-> SUSPENDED, and DISCONNECTED from
 * anywhere. Each local action tells the peer with a signed notice; each verified notice from the
 * peer moves this side. Key rotation tells every peer with a message signed by the old key.
 */
export const CONNECTION_ACTIONS = ['accept', 'reject', 'suspend', 'resume', 'disconnect'] as const;
export type ConnectionAction = (typeof CONNECTION_ACTIONS)[number];
/**
 * Accepting and rejecting a peer's request are the administrator's; the other actions are also the owning workspace's.
 */
export const ADMIN_ACTIONS: readonly ConnectionAction[] = ['accept', 'reject'];

/** Who acts: a workspace (its own connections), or the instance's administrator (any). */
export type ConnectionScope = { workspaceId: string } | { admin: true };

const HANDSHAKE_TYPES = [
  'connection.request',
  'connection.accept',
  'connection.reject',
  'connection.suspend',
  'connection.resume',
  'connection.disconnect',
  'keys.rotate',
] as const;
type HandshakeType = (typeof HANDSHAKE_TYPES)[number];

const HandshakeSchema = z.strictObject({
  type: z.enum(HANDSHAKE_TYPES),
  instance: PublicIdentitySchema,
  timestamp: z.iso.datetime({ offset: true }),
  nonce: z.string(),
});

const TRANSITIONS: Record<ConnectionAction, { from: string[]; to: string; notice: HandshakeType }> = {
  accept: { from: ['PENDING'], to: 'ACTIVE', notice: 'connection.accept' },
  reject: { from: ['PENDING'], to: 'DISCONNECTED', notice: 'connection.reject' },
  suspend: { from: ['ACTIVE'], to: 'SUSPENDED', notice: 'connection.suspend' },
  resume: { from: ['SUSPENDED'], to: 'ACTIVE', notice: 'connection.resume' },
  disconnect: { from: ['PENDING', 'ACTIVE', 'SUSPENDED'], to: 'DISCONNECTED', notice: 'connection.disconnect' },
};

/** How a peer's notice moves our side of the connection; null when it does not apply. */
function nextStatus(type: HandshakeType, status: string, initiatedBy: string): string | null {
  switch (type) {
    case 'connection.accept':
      return status === 'PENDING' && initiatedBy === 'local' ? 'ACTIVE' : null;
    case 'connection.reject':
    case 'connection.disconnect':
      return 'DISCONNECTED';
    case 'connection.suspend':
      return status === 'ACTIVE' ? 'SUSPENDED' : null;
    case 'connection.resume':
      return status === 'SUSPENDED' ? 'ACTIVE' : null;
    default:
      return null;
  }
}

export interface ConnectionServiceDeps {
  prisma: PrismaClient;
  temporal: Client;
  /** Where the federationCommand workflow runs (TASK_QUEUE). */
  taskQueue: string;
  identity: IdentityHolder;
  /** How peers are reached (the outbound address policy). */
  peers: PeerTransport;
  /** host[:port] of PUBLIC_URL: what incoming signatures must cover. */
  authority: string;
  log: Logger;
  /** Told after a connection's status changed (agents followed through it react). */
  onStatusChanged?: (connectionId: string, status: string) => Promise<void>;
}

/** Identity fetches one source address can cause with unauthenticated connection requests. */
const HANDSHAKE_FETCHES_PER_MINUTE = 10;

export function createConnectionService(deps: ConnectionServiceDeps) {
  const { prisma } = deps;
  const fetchesPerSource = new SlidingWindowLimiter(HANDSHAKE_FETCHES_PER_MINUTE, 60_000);

  const load = (id: string): Promise<ConnectionWithKeys> =>
    prisma.federationConnection.findUniqueOrThrow({ where: { id }, include: { keys: true } });

  async function statusChanged(connectionId: string, status: string): Promise<void> {
    await deps.onStatusChanged?.(connectionId, status).catch((error: unknown) => {
      deps.log.warn({ err: error, connectionId }, 'agents following this connection were not told of its new status');
    });
  }

  /** A connection the caller may act on: its workspace's, or an unclaimed request from a peer. */
  /** A connection the caller may act on: its workspace's, or any for the instance's administrator. */
  async function owned(id: string, scope: ConnectionScope): Promise<ConnectionWithKeys> {
    const connection = await prisma.federationConnection.findUnique({ where: { id }, include: { keys: true } });
    if (!connection) throw new DomainError('not_found', 'not_found', `No connection ${id}`);
    if ('workspaceId' in scope && connection.workspaceId !== scope.workspaceId) {
      throw new DomainError(
        'forbidden',
        'forbidden',
        connection.workspaceId === null
          ? `Connection ${id} is a peer's request: the instance's administrator accepts or rejects it`
          : `Connection ${id} belongs to another workspace`,
      );
    }
    return connection;
  }

  async function notify(peerUrl: string, type: HandshakeType): Promise<boolean> {
    const identity = deps.identity.current();
    try {
      await sendHandshake(deps.peers, identity, publicIdentity(identity), peerUrl, type);
      return true;
    } catch (error) {
      deps.log.warn({ err: error, type }, 'the peer was not told');
      return false;
    }
  }

  /** A peer's first request, or a known peer asking again (its request must be signed with a key this side holds). */
  async function handleRequest(
    request: IncomingRequest,
    parsed: ParsedSignature,
    instance: PublicIdentity,
    existing: ConnectionWithKeys | null,
  ): Promise<{ status: string }> {
    const listed = instance.keys.find((candidate) => candidate.keyId === parsed.params.keyid);
    if (!listed) throw new FederationRejection(401, 'unknown_key', 'the request is not signed with a key it lists');
    if (existing) {
      // An instance id is bound to the key that introduced it: another key changes nothing, and nothing is fetched.
      const held = existing.keys.find((key) => key.keyId === listed.keyId && keyValidAt(key, Date.now()));
      if (!held)
        throw new FederationRejection(
          409,
          'instance_bound',
          'this instance id is bound to other keys; only a message signed with one of them can change its connection',
        );
    }
    checkSignatureAndDigest(request, parsed, listed.publicKey, deps.authority, null);
    // A replayed request is refused before anything is fetched, and one source may make this instance fetch only so
    // often.
    await consumeNonce(prisma, parsed, null);
    if (!fetchesPerSource.take(request.source))
      throw new FederationRejection(
        429,
        'too_many_handshakes',
        `more than ${HANDSHAKE_FETCHES_PER_MINUTE} connection requests a minute from one address`,
      );
    if (existing && (existing.status === 'ACTIVE' || existing.status === 'SUSPENDED'))
      throw new FederationRejection(409, 'already_connected', 'a connection with this instance exists');
    // The key must really be the one published at the claimed URL.
    if (!(await publishes(instance.baseUrl, instance.instanceId, listed))) {
      throw new FederationRejection(
        403,
        'identity_mismatch',
        `${instance.baseUrl} does not publish this instance and key`,
      );
    }
    const fields = { status: 'PENDING', initiatedBy: 'peer', workspaceId: null, allowedCommandTypes: [] };
    if (existing) await renewConnection(prisma, existing.id, instance, fields, false);
    else await createConnection(prisma, randomUUID(), instance, fields);
    return { status: 'PENDING' };
  }

  /** Whether `url` publishes this instance id with this very key (what a request or a URL move claims). */
  async function publishes(
    url: string,
    instanceId: string,
    key: { keyId: string; publicKey: string },
  ): Promise<boolean> {
    const published = await fetchPeerIdentity(deps.peers, url).catch(() => null);
    if (published?.instanceId !== instanceId) return false;
    return published.keys.some((candidate) => candidate.keyId === key.keyId && candidate.publicKey === key.publicKey);
  }

  async function handshake(request: IncomingRequest): Promise<{ status: string }> {
    const parsed = parseSignedRequest(request);
    const message = HandshakeSchema.safeParse(parseBody(request, null));
    if (!message.success) throw new FederationRejection(400, 'invalid_handshake', describeIssues(message.error));
    const { type, instance } = message.data;
    if (message.data.nonce !== parsed.params.nonce)
      throw new FederationRejection(400, 'nonce_mismatch', 'the message nonce differs from the signature nonce');
    const existing = await prisma.federationConnection.findUnique({
      where: { peerInstanceId: instance.instanceId },
      include: { keys: true },
    });
    if (type === 'connection.request') return handleRequest(request, parsed, instance, existing);

    if (!existing) throw new FederationRejection(401, 'unknown_key', 'no connection with this instance');
    const key = existing.keys.find(
      (candidate) => candidate.keyId === parsed.params.keyid && keyValidAt(candidate, Date.now()),
    );
    if (!key)
      throw new FederationRejection(401, 'unknown_key', 'the signing key belongs to no connection of this instance');
    checkSignatureAndDigest(request, parsed, key.publicKey, deps.authority, existing.id);
    await consumeNonce(prisma, parsed, existing.id);
    if (type === 'keys.rotate') {
      // A rotation that names a new URL moves the peer only if the new URL publishes this very instance and key.
      if (instance.baseUrl !== existing.peerUrl) {
        if (!fetchesPerSource.take(request.source))
          throw new FederationRejection(
            429,
            'too_many_handshakes',
            `more than ${HANDSHAKE_FETCHES_PER_MINUTE} identity fetches a minute from one address`,
          );
        if (!(await publishes(instance.baseUrl, existing.peerInstanceId, key))) {
          throw new FederationRejection(
            403,
            'identity_mismatch',
            `${instance.baseUrl} does not publish this instance and its signing key: the URL stays ${existing.peerUrl}`,
            existing.id,
          );
        }
      }
      await applyRotation(prisma, existing.id, instance, key.keyId);
      return { status: existing.status };
    }
    const next = nextStatus(type, existing.status, existing.initiatedBy);
    if (next === null)
      throw new FederationRejection(
        409,
        'invalid_transition',
        `${type} does not apply to a ${existing.status} connection`,
        existing.id,
      );
    // A peer lifts only its own suspension: one made here stays until this instance resumes it.
    if (type === 'connection.resume' && existing.suspendedBy === 'local') {
      throw new FederationRejection(
        409,
        'suspended_by_receiver',
        'this instance suspended the connection: only it can resume it',
        existing.id,
      );
    }
    await prisma.federationConnection.update({
      where: { id: existing.id },
      data: { status: next, suspendedBy: next === 'SUSPENDED' ? 'peer' : null },
    });
    await statusChanged(existing.id, next);
    return { status: next };
  }

  const peerFailure = (error: unknown): DomainError =>
    new DomainError(
      'peer_failed',
      error instanceof PeerError ? error.code : 'peer_error',
      error instanceof Error ? error.message : String(error),
    );

  return {
    owned,

    /** Asks a peer for a connection: fetches its identity, records PENDING and sends a signed request. */
    async request(
      workspaceId: string,
      input: { peerUrl: string; allowedCommandTypes: CommandType[] },
    ): Promise<ConnectionWithKeys> {
      const identity = deps.identity.current();
      let peer: PublicIdentity;
      try {
        peer = await fetchPeerIdentity(deps.peers, input.peerUrl);
      } catch (error) {
        deps.log.warn({ err: error, peerUrl: input.peerUrl }, 'the peer identity could not be fetched');
        throw peerFailure(error);
      }
      if (peer.instanceId === identity.instanceId)
        throw new DomainError('invalid', 'self_connection', 'an instance cannot connect to itself');
      const existing = await prisma.federationConnection.findUnique({
        where: { peerInstanceId: peer.instanceId },
        include: { keys: true },
      });
      if (existing && existing.status !== 'DISCONNECTED')
        throw new DomainError(
          'conflict',
          'already_connected',
          `a ${existing.status} connection with ${peer.name} exists`,
        );
      const fields = {
        status: 'PENDING',
        initiatedBy: 'local',
        workspaceId,
        allowedCommandTypes: input.allowedCommandTypes,
      };
      const id = existing?.id ?? randomUUID();
      if (existing) {
        // The instance id stays bound to its keys: what it publishes now must continue a key this instance holds.
        if (!peer.keys.some((key) => existing.keys.some((held) => held.keyId === key.keyId))) {
          throw new DomainError(
            'conflict',
            'identity_changed',
            `${peer.name} (${peer.instanceId}) no longer publishes any key this instance knows for it`,
          );
        }
        await renewConnection(prisma, id, peer, fields, true);
      } else {
        await createConnection(prisma, id, peer, fields);
      }
      try {
        await sendHandshake(deps.peers, identity, publicIdentity(identity), peer.baseUrl, 'connection.request');
      } catch (error) {
        await prisma.federationConnection.update({ where: { id }, data: { status: 'DISCONNECTED' } });
        throw peerFailure(error);
      }
      return load(id);
    },

    /** The workspace's connections; for the administrator every connection, peers' requests included. */
    async list(scope: ConnectionScope): Promise<ConnectionWithKeys[]> {
      return prisma.federationConnection.findMany({
        where: 'workspaceId' in scope ? { workspaceId: scope.workspaceId } : {},
        include: { keys: true },
        orderBy: { createdAt: 'desc' },
      });
    },

    /** accept, reject, suspend, resume or disconnect; the peer is told with a signed notice. */
    async act(
      scope: ConnectionScope,
      id: string,
      action: ConnectionAction,
      accepted?: { workspace: string; allowedCommandTypes: CommandType[]; allowLocalRepositories: boolean },
    ): Promise<{ connection: ConnectionWithKeys; peerNotified: boolean }> {
      const rule = TRANSITIONS[action];
      const connection = await owned(id, scope);
      if (!rule.from.includes(connection.status))
        throw new DomainError('conflict', 'invalid_transition', `cannot ${action} a ${connection.status} connection`);
      if (action === 'accept' && connection.initiatedBy !== 'peer')
        throw new DomainError('conflict', 'invalid_transition', 'only the instance that was asked can accept');
      if (action === 'resume' && connection.suspendedBy === 'peer') {
        throw new DomainError(
          'conflict',
          'suspended_by_peer',
          `${connection.peerName} suspended the connection: only it can resume it`,
        );
      }
      // Accepting gives the peer's connection to a workspace, with what its peer may do there.
      let grant: { workspaceId: string; allowedCommandTypes: CommandType[]; allowLocalRepositories: boolean } | null =
        null;
      if (accepted) {
        const workspace = await prisma.workspace.findUnique({ where: { name: accepted.workspace } });
        if (!workspace) throw new DomainError('not_found', 'unknown_workspace', `No workspace ${accepted.workspace}`);
        grant = {
          workspaceId: workspace.id,
          allowedCommandTypes: accepted.allowedCommandTypes,
          allowLocalRepositories: accepted.allowLocalRepositories,
        };
      }
      await prisma.federationConnection.update({
        where: { id },
        data: { status: rule.to, suspendedBy: rule.to === 'SUSPENDED' ? 'local' : null, ...grant },
      });
      const peerNotified = await notify(connection.peerUrl, rule.notice);
      await statusChanged(id, rule.to);
      return { connection: await load(id), peerNotified };
    },

    /**
     * Sends one signed COMMAND through a connection and returns its record once the peer's reply is
     * verified (or the sending gave up). A durable federationCommand workflow does the sending, so the
     * record is finished even if this process dies. agent.spawn is not sent this way: an agent run on
     * a peer is followed to its end by POST /api/v1/federation/agents/spawn.
     */
    async sendCommand(
      workspaceId: string,
      input: { connectionId: string; commandType: CommandType; payload: Record<string, unknown> },
    ): Promise<FederationCommand> {
      if (input.commandType === 'agent.spawn') {
        throw new DomainError(
          'invalid',
          'use_federated_spawn',
          'agent.spawn goes through POST /api/v1/federation/agents/spawn, which follows the agent to its end',
        );
      }
      const connection = await owned(input.connectionId, { workspaceId });
      if (connection.status !== 'ACTIVE')
        throw new DomainError('conflict', 'connection_not_active', `the connection is ${connection.status}`);
      const command = outboundCommand(input);
      const handle = await startFederationCommand(deps.temporal, deps.taskQueue, command);
      await handle.result().catch((error: unknown) => {
        if (!(error instanceof WorkflowFailedError)) throw error; // the record says how it failed
      });
      return prisma.federationCommand.findUniqueOrThrow({
        where: {
          connectionId_direction_messageId: {
            connectionId: connection.id,
            direction: 'outbound',
            messageId: command.messageId,
          },
        },
      });
    },

    /** Makes a new signing key; peers learn it (signed with the old one, which they hold) before it signs anything. */
    async rotateKeys(overlapSeconds: number): Promise<{ identity: PublicIdentity; notified: string[] }> {
      const before = deps.identity.current();
      const rotated = deps.identity.rotate(overlapSeconds);
      const connections = await prisma.federationConnection.findMany({
        where: { status: { in: ['ACTIVE', 'SUSPENDED', 'PENDING'] } },
      });
      const notified: string[] = [];
      for (const connection of connections) {
        try {
          await sendHandshake(deps.peers, before, publicIdentity(rotated), connection.peerUrl, 'keys.rotate');
          notified.push(connection.id);
        } catch (error) {
          deps.log.warn({ err: error, connectionId: connection.id }, 'a peer was not told about the new key');
        }
      }
      return { identity: publicIdentity(rotated), notified };
    },

    /**
     * A signed notice from a peer (POST /api/v1/federation/handshake). A connection.request is verified
     * with the key it names, which must be published at the URL it claims; every other notice must be
     * signed by a key this instance already holds for that peer. Throws FederationRejection.
     */
    async handleHandshake(request: IncomingRequest): Promise<{ status: string }> {
      try {
        return await handshake(request);
      } catch (error) {
        if (error instanceof DomainError) throw new FederationRejection(409, error.code, error.message);
        throw error;
      }
    },
  };
}

export type ConnectionService = ReturnType<typeof createConnectionService>;
