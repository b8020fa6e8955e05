import { randomUUID } from 'node:crypto';
import express, { Router, type Response } from 'express';
import { z } from 'zod';
import { executeCommand } from '../../federation/command-handler';
import { fetchPeerIdentity, PeerError, sendCommand, sendHandshake } from '../../federation/client';
import { publicIdentity, signingKey, type IdentityHolder, type PublicIdentity } from '../../federation/identity';
import { admitCommand, checkSignatureAndDigest, consumeNonce, FederationRejection, parseBody, parseSignedRequest, type IncomingRequest } from '../../federation/incoming';
import { COMMAND_TYPES, MAX_BODY_BYTES, PublicIdentitySchema, signResponse, type CommandReply } from '../../federation/messages';
import type { Logger } from '../../platform/logger';
import type { Prisma, PrismaClient } from '../../prisma/client';
import type { AgentService } from '../agent-service';
import { requireApiToken, workspaceOf } from '../auth';
import { ApiError } from '../errors';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody as parseJsonBody, parseParams } from '../validation';

export interface FederationRouteDeps {
  prisma: PrismaClient;
  identity: IdentityHolder;
  agents: AgentService;
  /** host[:port] of PUBLIC_URL: what incoming signatures must cover. */
  authority: string;
  rateLimitPerMinute: number;
  log: Logger;
}

// The document's copy of the identity schema (federation/ defines it without the OpenAPI extension).
const InstanceIdentitySchema = z.object(PublicIdentitySchema.shape).openapi('InstanceIdentity');

const HANDSHAKE_TYPES = ['connection.request', 'connection.accept', 'connection.reject', 'connection.suspend', 'connection.resume', 'connection.disconnect', 'keys.rotate'] as const;
const HandshakeSchema = z.strictObject({
  type: z.enum(HANDSHAKE_TYPES),
  instance: PublicIdentitySchema,
  timestamp: z.iso.datetime({ offset: true }),
  nonce: z.string(),
});

const CommandTypes = z.array(z.enum(COMMAND_TYPES)).max(COMMAND_TYPES.length);
export const CreateConnectionSchema = z.strictObject({ peerUrl: z.url({ protocol: /^https?$/ }), allowedCommandTypes: CommandTypes.default([]) }).openapi('CreateConnection');
export const AcceptConnectionSchema = z.strictObject({ allowedCommandTypes: CommandTypes.default([...COMMAND_TYPES]) }).openapi('AcceptConnection');
export const SendCommandSchema = z.strictObject({ connectionId: z.uuid(), commandType: z.enum(COMMAND_TYPES), payload: z.record(z.string(), z.unknown()) }).openapi('SendCommand');
export const RotateKeysSchema = z.strictObject({ overlapSeconds: z.number().int().min(0).max(30 * 24 * 3600).default(24 * 3600) });
const IdParams = z.object({ id: z.uuid() });

openApiRegistry.registerPath({ method: 'get', path: '/api/v1/federation/instance', summary: "This instance's public identity and keys", responses: { 200: jsonContent(InstanceIdentitySchema, 'The identity') } });
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/incoming/command',
  summary: 'A signed COMMAND from a connected peer (RFC 9421, see docs/federation-protocol.md)',
  responses: { 200: { description: 'A signed reply' }, 400: errorResponse('Malformed'), 401: errorResponse('Not authenticated'), 403: errorResponse('Not allowed'), 409: errorResponse('Replay'), 413: errorResponse('Too large'), 415: errorResponse('Not JSON'), 429: errorResponse('Rate limited') },
});
openApiRegistry.registerPath({ method: 'post', path: '/api/v1/federation/connections', summary: 'Ask a peer for a connection', security: [{ bearerAuth: [] }], request: { body: { content: { 'application/json': { schema: CreateConnectionSchema } } } }, responses: { 201: { description: 'Pending connection' }, 502: errorResponse('The peer refused or did not answer') } });
openApiRegistry.registerPath({ method: 'post', path: '/api/v1/federation/command', summary: 'Send a signed command to a connected peer', security: [{ bearerAuth: [] }], request: { body: { content: { 'application/json': { schema: SendCommandSchema } } } }, responses: { 200: { description: 'The recorded command with the verified reply' } } });
for (const action of ['accept', 'reject', 'suspend', 'resume', 'disconnect']) {
  openApiRegistry.registerPath({ method: 'post', path: `/api/v1/federation/connections/{id}/${action}`, summary: `${action} a connection (the peer is told, signed)`, security: [{ bearerAuth: [] }], request: { params: IdParams }, responses: { 200: { description: 'The connection' } } });
}
openApiRegistry.registerPath({ method: 'get', path: '/api/v1/federation/commands', summary: 'Commands that came and went', security: [{ bearerAuth: [] }], responses: { 200: { description: 'Commands' } } });
openApiRegistry.registerPath({ method: 'get', path: '/api/v1/federation/commands/{id}', summary: 'One command: direction, type, status, reply, error, timings', security: [{ bearerAuth: [] }], request: { params: IdParams }, responses: { 200: { description: 'The command' } } });

function incoming(req: express.Request): IncomingRequest {
  return { method: req.method, path: req.originalUrl.split('?')[0] ?? '', headers: req.headers, body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0) };
}

function reject(res: Response, rejection: FederationRejection): void {
  res.status(rejection.status).json({ success: false, error: { code: rejection.code, message: rejection.message } });
}

/** Public, signed endpoints: mounted before the JSON body parser, because signatures cover the raw bytes. */
export function federationPublicRouter(deps: FederationRouteDeps): Router {
  const { prisma } = deps;
  const router = Router();
  const raw = express.raw({ type: () => true, limit: MAX_BODY_BYTES });

  router.get('/api/v1/federation/instance', (_req, res) => {
    res.json(publicIdentity(deps.identity.current()));
  });

  router.post('/api/v1/federation/incoming/command', raw, async (req, res) => {
    const started = Date.now();
    const request = incoming(req);
    try {
      const admission = await admitCommand({ prisma, authority: deps.authority, rateLimitPerMinute: deps.rateLimitPerMinute }, request);
      const identity = deps.identity.current();
      if (admission.kind === 'repeat') {
        const body = Buffer.from(JSON.stringify(admission.reply));
        res.status(200).set(signResponse(200, body, signingKey(identity))).send(body);
        return;
      }
      const { connection, envelope } = admission;
      const record = await prisma.federationCommand.create({
        data: { id: randomUUID(), direction: 'inbound', connectionId: connection.id, messageId: envelope.messageId, commandType: envelope.commandType, bodyHash: admission.bodyHash, status: 'running', payload: envelope.payload as Prisma.InputJsonObject },
      });
      const outcome = await executeCommand(deps.agents, connection, envelope);
      const reply: CommandReply = {
        messageId: randomUUID(),
        inReplyTo: envelope.messageId,
        instanceId: identity.instanceId,
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
      const body = Buffer.from(JSON.stringify(reply));
      res.status(200).set(signResponse(200, body, signingKey(identity))).send(body);
    } catch (error) {
      if (!(error instanceof FederationRejection)) throw error;
      await prisma.federationCommand.create({
        data: { id: randomUUID(), direction: 'inbound', connectionId: error.connectionId, status: 'rejected', errorCode: error.code, error: error.message, completedAt: new Date(), durationMs: Date.now() - started },
      });
      deps.log.warn({ code: error.code, connectionId: error.connectionId }, 'federation command rejected');
      reject(res, error);
    }
  });

  router.post('/api/v1/federation/handshake', raw, async (req, res) => {
    const request = incoming(req);
    try {
      const parsed = parseSignedRequest(request);
      const message = HandshakeSchema.safeParse(parseBody(request, null));
      if (!message.success) throw new FederationRejection(400, 'invalid_handshake', message.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
      const { type, instance } = message.data;
      if (message.data.nonce !== parsed.params.nonce) throw new FederationRejection(400, 'nonce_mismatch', 'the message nonce differs from the signature nonce');
      const existing = await prisma.federationConnection.findUnique({ where: { peerInstanceId: instance.instanceId }, include: { keys: true } });

      if (type === 'connection.request') {
        const key = instance.keys.find((candidate) => candidate.keyId === parsed.params.keyid);
        if (!key) throw new FederationRejection(401, 'unknown_key', 'the request is not signed with a key it lists');
        checkSignatureAndDigest(request, parsed, key.publicKey, deps.authority, null);
        // The key must really be the one published at the claimed URL.
        const published = await fetchPeerIdentity(instance.baseUrl).catch(() => null);
        if (published?.instanceId !== instance.instanceId || !published.keys.some((candidate) => candidate.keyId === key.keyId && candidate.publicKey === key.publicKey)) {
          throw new FederationRejection(403, 'identity_mismatch', `${instance.baseUrl} does not publish this instance and key`);
        }
        await consumeNonce(prisma, parsed, null);
        if (existing && (existing.status === 'ACTIVE' || existing.status === 'SUSPENDED')) throw new FederationRejection(409, 'already_connected', 'a connection with this instance exists');
        await saveConnection(prisma, instance, existing?.id ?? randomUUID(), { status: 'PENDING', initiatedBy: 'peer', workspaceId: null, allowedCommandTypes: [] });
        res.status(202).json({ status: 'PENDING' });
        return;
      }

      if (!existing) throw new FederationRejection(401, 'unknown_key', 'no connection with this instance');
      const key = existing.keys.find((candidate) => candidate.keyId === parsed.params.keyid && (candidate.notAfter === null || candidate.notAfter.getTime() > Date.now()));
      if (!key) throw new FederationRejection(401, 'unknown_key', 'the signing key belongs to no connection of this instance');
      checkSignatureAndDigest(request, parsed, key.publicKey, deps.authority, existing.id);
      await consumeNonce(prisma, parsed, existing.id);
      const next = nextStatus(type, existing.status, existing.initiatedBy);
      if (type === 'keys.rotate') await saveConnection(prisma, instance, existing.id, {});
      else if (next === null) throw new FederationRejection(409, 'invalid_transition', `${type} does not apply to a ${existing.status} connection`, existing.id);
      else await prisma.federationConnection.update({ where: { id: existing.id }, data: { status: next } });
      res.status(202).json({ status: next ?? existing.status });
    } catch (error) {
      if (!(error instanceof FederationRejection)) throw error;
      reject(res, error);
    }
  });

  return router;
}

/** How a peer's notice moves our side of the connection; null when it does not apply. */
function nextStatus(type: (typeof HANDSHAKE_TYPES)[number], status: string, initiatedBy: string): string | null {
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

/** Creates or updates a connection and makes its key set exactly the peer's published keys. */
async function saveConnection(
  prisma: PrismaClient,
  peer: PublicIdentity,
  id: string,
  fields: Partial<{ status: string; initiatedBy: string; workspaceId: string | null; allowedCommandTypes: string[] }>,
): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.federationConnection.upsert({
      where: { id },
      create: { id, peerInstanceId: peer.instanceId, peerName: peer.name, peerUrl: peer.baseUrl, status: fields.status ?? 'PENDING', initiatedBy: fields.initiatedBy ?? 'local', workspaceId: fields.workspaceId ?? null, allowedCommandTypes: fields.allowedCommandTypes ?? [] },
      update: { peerName: peer.name, peerUrl: peer.baseUrl, ...fields },
    });
    // Keys the peer no longer lists are expired, not forgotten: a signature with one is refused as key_expired.
    await tx.federationPeerKey.updateMany({
      where: { connectionId: id, keyId: { notIn: peer.keys.map((key) => key.keyId) }, OR: [{ notAfter: null }, { notAfter: { gt: new Date() } }] },
      data: { notAfter: new Date() },
    });
    for (const key of peer.keys) {
      const notAfter = key.notAfter ? new Date(key.notAfter) : null;
      await tx.federationPeerKey.upsert({ where: { keyId: key.keyId }, create: { keyId: key.keyId, connectionId: id, publicKey: key.publicKey, notAfter }, update: { notAfter } });
    }
  });
}

function connectionView(connection: Prisma.FederationConnectionGetPayload<{ include: { keys: true } }>) {
  return {
    id: connection.id,
    peerInstanceId: connection.peerInstanceId,
    peerName: connection.peerName,
    peerUrl: connection.peerUrl,
    status: connection.status,
    initiatedBy: connection.initiatedBy,
    allowedCommandTypes: connection.allowedCommandTypes,
    keys: connection.keys.map((key) => ({ keyId: key.keyId, notAfter: key.notAfter?.toISOString() ?? null })),
    createdAt: connection.createdAt.toISOString(),
    updatedAt: connection.updatedAt.toISOString(),
  };
}

/** Operator endpoints (bearer token, scoped to the token's workspace). */
export function federationRouter(deps: FederationRouteDeps): Router {
  const { prisma } = deps;
  const router = Router();
  router.use('/api/v1/federation', requireApiToken(prisma));

  /** A connection the caller may act on: its workspace's, or an unclaimed request from a peer. */
  async function ownedConnection(id: string, workspaceId: string) {
    const connection = await prisma.federationConnection.findUnique({ where: { id }, include: { keys: true } });
    if (!connection) throw new ApiError(404, 'not_found', `No connection ${id}`);
    if (connection.workspaceId !== null && connection.workspaceId !== workspaceId) throw new ApiError(403, 'forbidden', `Connection ${id} belongs to another workspace`);
    return connection;
  }

  async function notify(peerUrl: string, type: string): Promise<boolean> {
    const identity = deps.identity.current();
    try {
      await sendHandshake(identity, publicIdentity(identity), peerUrl, type);
      return true;
    } catch (error) {
      deps.log.warn({ err: error, type }, 'the peer was not told');
      return false;
    }
  }

  router.post('/api/v1/federation/connections', async (req, res) => {
    const body = parseJsonBody(CreateConnectionSchema, req);
    const identity = deps.identity.current();
    let peer: PublicIdentity;
    try {
      peer = await fetchPeerIdentity(body.peerUrl);
    } catch (error) {
      throw new ApiError(502, error instanceof PeerError ? error.code : 'peer_error', error instanceof Error ? error.message : String(error));
    }
    if (peer.instanceId === identity.instanceId) throw new ApiError(400, 'self_connection', 'an instance cannot connect to itself');
    const existing = await prisma.federationConnection.findUnique({ where: { peerInstanceId: peer.instanceId } });
    if (existing && existing.status !== 'DISCONNECTED') throw new ApiError(409, 'already_connected', `a ${existing.status} connection with ${peer.name} exists`);
    const id = existing?.id ?? randomUUID();
    await saveConnection(prisma, peer, id, { status: 'PENDING', initiatedBy: 'local', workspaceId: workspaceOf(res), allowedCommandTypes: body.allowedCommandTypes });
    try {
      await sendHandshake(identity, publicIdentity(identity), peer.baseUrl, 'connection.request');
    } catch (error) {
      await prisma.federationConnection.update({ where: { id }, data: { status: 'DISCONNECTED' } });
      throw new ApiError(502, error instanceof PeerError ? error.code : 'peer_error', error instanceof Error ? error.message : String(error));
    }
    res.status(201).json(connectionView(await prisma.federationConnection.findUniqueOrThrow({ where: { id }, include: { keys: true } })));
  });

  router.get('/api/v1/federation/connections', async (_req, res) => {
    const connections = await prisma.federationConnection.findMany({
      where: { OR: [{ workspaceId: workspaceOf(res) }, { workspaceId: null }] },
      include: { keys: true },
      orderBy: { createdAt: 'desc' },
    });
    res.json({ connections: connections.map(connectionView) });
  });

  const transitions: Record<string, { from: string[]; to: string; notice: string }> = {
    accept: { from: ['PENDING'], to: 'ACTIVE', notice: 'connection.accept' },
    reject: { from: ['PENDING'], to: 'DISCONNECTED', notice: 'connection.reject' },
    suspend: { from: ['ACTIVE'], to: 'SUSPENDED', notice: 'connection.suspend' },
    resume: { from: ['SUSPENDED'], to: 'ACTIVE', notice: 'connection.resume' },
    disconnect: { from: ['PENDING', 'ACTIVE', 'SUSPENDED'], to: 'DISCONNECTED', notice: 'connection.disconnect' },
  };
  for (const [action, rule] of Object.entries(transitions)) {
    router.post(`/api/v1/federation/connections/:id/${action}`, async (req, res) => {
      const { id } = parseParams(IdParams, req);
      const connection = await ownedConnection(id, workspaceOf(res));
      if (!rule.from.includes(connection.status)) throw new ApiError(409, 'invalid_transition', `cannot ${action} a ${connection.status} connection`);
      if (action === 'accept' && connection.initiatedBy !== 'peer') throw new ApiError(409, 'invalid_transition', 'only the instance that was asked can accept');
      const accepted = action === 'accept' ? parseJsonBody(AcceptConnectionSchema, req) : null;
      await prisma.federationConnection.update({
        where: { id },
        data: { status: rule.to, workspaceId: workspaceOf(res), ...(accepted ? { allowedCommandTypes: accepted.allowedCommandTypes } : {}) },
      });
      const peerNotified = await notify(connection.peerUrl, rule.notice);
      res.json({ ...connectionView(await prisma.federationConnection.findUniqueOrThrow({ where: { id }, include: { keys: true } })), peerNotified });
    });
  }

  router.post('/api/v1/federation/keys/rotate', async (req, res) => {
    const { overlapSeconds } = parseJsonBody(RotateKeysSchema, req);
    // Peers learn the new key (signed with the old one, which they hold) before it signs anything.
    const before = deps.identity.current();
    const rotated = deps.identity.rotate(overlapSeconds);
    const connections = await prisma.federationConnection.findMany({ where: { status: { in: ['ACTIVE', 'SUSPENDED', 'PENDING'] } } });
    const notified: string[] = [];
    for (const connection of connections) {
      try {
        await sendHandshake(before, publicIdentity(rotated), connection.peerUrl, 'keys.rotate');
        notified.push(connection.id);
      } catch (error) {
        deps.log.warn({ err: error, connectionId: connection.id }, 'a peer was not told about the new key');
      }
    }
    res.json({ ...publicIdentity(rotated), notified });
  });

  router.post('/api/v1/federation/command', async (req, res) => {
    const body = parseJsonBody(SendCommandSchema, req);
    const connection = await ownedConnection(body.connectionId, workspaceOf(res));
    if (connection.status !== 'ACTIVE') throw new ApiError(409, 'connection_not_active', `the connection is ${connection.status}`);
    const command = await sendCommand(prisma, deps.identity.current(), connection, body.commandType, body.payload);
    res.status(command.status === 'succeeded' ? 200 : 502).json(command);
  });

  router.get('/api/v1/federation/commands', async (req, res) => {
    const direction = typeof req.query.direction === 'string' ? req.query.direction : undefined;
    const commands = await prisma.federationCommand.findMany({
      where: { connection: { workspaceId: workspaceOf(res) }, ...(direction ? { direction } : {}) },
      orderBy: { createdAt: 'desc' },
      take: 100,
    });
    res.json({ commands });
  });

  router.get('/api/v1/federation/commands/:id', async (req, res) => {
    const { id } = parseParams(IdParams, req);
    const command = await prisma.federationCommand.findUnique({ where: { id }, include: { connection: true } });
    if (!command) throw new ApiError(404, 'not_found', `No command ${id}`);
    if (command.connection?.workspaceId !== workspaceOf(res)) throw new ApiError(403, 'forbidden', `Command ${id} belongs to another workspace`);
    const { connection: _connection, ...view } = command;
    res.json(view);
  });

  return router;
}

