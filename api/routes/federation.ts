import { createHash } from 'node:crypto';
import express, { Router, type Response } from 'express';
import type { ConnectionService } from '../../domain/connections/connection-service';
import { ADMIN_ACTIONS, CONNECTION_ACTIONS, type ConnectionScope } from '../../domain/connections/connection-service';
import type { FederatedAgentService } from '../../domain/agents/federated-agent-service';
import type { PeerCommandHandler } from '../../domain/agents/peer-commands';
import { HANDSHAKE_PATH, INCOMING_COMMAND_PATH, INCOMING_EVENT_PATH, refusalCode } from '../../federation/client';
import { publicIdentity, type IdentityHolder } from '../../federation/identity';
import {
  FederationRejection,
  type ConnectionWithKeys,
  type IncomingRequest,
  type SignedMessageResponse,
} from '../../federation/incoming';
import { MAX_BODY_BYTES } from '../../federation/messages';
import type { ApiMetrics } from '../../platform/metrics';
import type { FederationCommand, PrismaClient } from '../../prisma/client';
import { authenticate, callerOfResponse, requireAdmin, workspaceOf } from '../auth';
import { refuseDeclaredTooLarge } from '../body-limit';
import { ApiError } from '../errors';
import { parseBody as parseJsonBody, parseParams } from '../validation';
import {
  CreateConnectionSchema,
  AcceptConnectionSchema,
  SendCommandSchema,
  RotateKeysSchema,
  IdParams,
} from '../schemas/federation';

export interface FederationRouteDeps {
  metrics: ApiMetrics;
  prisma: PrismaClient;
  identity: IdentityHolder;
  connections: ConnectionService;
  peerCommands: PeerCommandHandler;
  federatedAgents: FederatedAgentService;
}

function messageIdOf(body: unknown): string | undefined {
  if (!Buffer.isBuffer(body)) return undefined;
  try {
    const { messageId } = JSON.parse(body.toString('utf8')) as { messageId?: unknown };
    return typeof messageId === 'string' && messageId.length <= 200 ? messageId : undefined;
  } catch {
    return undefined;
  }
}

function incoming(req: express.Request, res: Response): IncomingRequest {
  const messageId = messageIdOf(req.body);
  if (messageId) res.locals.messageId = messageId;
  return {
    method: req.method,
    path: req.originalUrl.split('?')[0] ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    source: req.socket.remoteAddress ?? 'unknown',
  };
}

/** Sends the headers exactly as signed (express's res.set would append a charset to Content-Type). */
function send(res: Response, response: SignedMessageResponse): void {
  res.status(response.status);
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  res.end(response.body);
}

const tooLarge = new FederationRejection(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`);
const isTooLarge = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { type?: unknown }).type === 'entity.too.large';

/** A command's record as the API shows it: the raw reply it kept until verification stays internal. */
function commandView({ rawReply: _rawReply, ...command }: FederationCommand) {
  return command;
}

function reject(res: Response, rejection: FederationRejection): void {
  res.status(rejection.status).json({ success: false, error: { code: rejection.code, message: rejection.message } });
}

/** Public, signed endpoints: mounted before the JSON body parser, because signatures cover the raw bytes. */
export function federationPublicRouter(deps: FederationRouteDeps): Router {
  const router = Router();
  // No inflating: the Content-Digest covers the bytes as sent (RFC 9530), so an encoded body is refused (415).
  const raw = express.raw({ type: () => true, limit: MAX_BODY_BYTES, inflate: false });
  router.use([INCOMING_COMMAND_PATH, INCOMING_EVENT_PATH, HANDSHAKE_PATH], refuseDeclaredTooLarge(MAX_BODY_BYTES));

  router.get('/api/v1/federation/instance', (_req, res) => {
    res.json(publicIdentity(deps.identity.current()));
  });

  /** Counts a refused command or event by its reason code. */
  const counted = (kind: 'command' | 'event', response: SignedMessageResponse): SignedMessageResponse => {
    if (response.status !== 200) deps.metrics.federationRejections.inc({ kind, reason: refusalCode(response.body) });
    return response;
  };

  router.post(INCOMING_COMMAND_PATH, raw, async (req, res) => {
    send(res, counted('command', await deps.peerCommands.handle(incoming(req, res))));
  });

  router.post(INCOMING_EVENT_PATH, raw, async (req, res) => {
    send(res, counted('event', await deps.federatedAgents.handleEvent(incoming(req, res))));
  });

  // A body refused for its size is recorded like every other refusal.
  const recordTooLarge: express.ErrorRequestHandler = async (error: unknown, req, res, next) => {
    if (!isTooLarge(error)) {
      next(error);
      return;
    }
    const event = req.originalUrl.startsWith(INCOMING_EVENT_PATH);
    res.setHeader('connection', 'close'); // the rest of the body is not read
    send(
      res,
      counted(
        event ? 'event' : 'command',
        event ? await deps.federatedAgents.refuseEvent(tooLarge) : await deps.peerCommands.refuse(tooLarge),
      ),
    );
  };
  router.use([INCOMING_COMMAND_PATH, INCOMING_EVENT_PATH], recordTooLarge);

  router.post(HANDSHAKE_PATH, raw, async (req, res) => {
    try {
      res.status(202).json(await deps.connections.handleHandshake(incoming(req, res)));
    } catch (error) {
      if (!(error instanceof FederationRejection)) throw error;
      deps.metrics.federationRejections.inc({ kind: 'handshake', reason: error.code });
      reject(res, error);
    }
  });

  return router;
}

/** SHA-256 of the raw 32-byte Ed25519 public key (published base64url-encoded), in colon-separated hex pairs. */
export const keyFingerprint = (publicKey: string): string =>
  (createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest('hex').match(/../g) ?? []).join(':');

function connectionView(connection: ConnectionWithKeys) {
  return {
    id: connection.id,
    peerInstanceId: connection.peerInstanceId,
    peerName: connection.peerName,
    peerUrl: connection.peerUrl,
    status: connection.status,
    /** While SUSPENDED: who suspended it ("local" or "peer"); only that side can resume it. */
    suspendedBy: connection.suspendedBy,
    initiatedBy: connection.initiatedBy,
    allowedCommandTypes: connection.allowedCommandTypes,
    allowLocalRepositories: connection.allowLocalRepositories,
    // The fingerprint lets an administrator compare the key with the one the peer's operator reads out before
    // accepting.
    keys: connection.keys.map((key) => ({
      keyId: key.keyId,
      fingerprint: keyFingerprint(key.publicKey),
      notAfter: key.notAfter?.toISOString() ?? null,
    })),
    createdAt: connection.createdAt.toISOString(),
    updatedAt: connection.updatedAt.toISOString(),
  };
}

/** Operator endpoints (bearer token, scoped to the token's workspace). */
export function federationRouter(deps: FederationRouteDeps): Router {
  const { prisma, connections } = deps;
  const router = Router();
  router.use('/api/v1/federation', authenticate(prisma));
  /** Whom a connection action is for: the administrator, or the caller's workspace. */
  const scopeOf = (res: Response): ConnectionScope =>
    callerOfResponse(res)?.role === 'admin' ? { admin: true } : { workspaceId: workspaceOf(res) };

  router.post('/api/v1/federation/connections', async (req, res) => {
    const body = parseJsonBody(CreateConnectionSchema, req);
    res.status(201).json(connectionView(await connections.request(workspaceOf(res), body)));
  });

  router.get('/api/v1/federation/connections', async (_req, res) => {
    res.json({ connections: (await connections.list(scopeOf(res))).map(connectionView) });
  });

  for (const action of CONNECTION_ACTIONS) {
    router.post(`/api/v1/federation/connections/:id/${action}`, async (req, res) => {
      const { id } = parseParams(IdParams, req);
      if (ADMIN_ACTIONS.includes(action)) requireAdmin(res);
      const accepted = action === 'accept' ? parseJsonBody(AcceptConnectionSchema, req) : undefined;
      const { connection, peerNotified } = await connections.act(scopeOf(res), id, action, accepted);
      res.json({ ...connectionView(connection), peerNotified });
    });
  }

  router.post('/api/v1/federation/keys/rotate', async (req, res) => {
    requireAdmin(res);
    const { overlapSeconds } = parseJsonBody(RotateKeysSchema, req);
    const { identity, notified } = await connections.rotateKeys(overlapSeconds);
    res.json({ ...identity, notified });
  });

  router.post('/api/v1/federation/command', async (req, res) => {
    const command = await connections.sendCommand(workspaceOf(res), parseJsonBody(SendCommandSchema, req));
    res.status(command.status === 'succeeded' ? 200 : 502).json(commandView(command));
  });

  router.get('/api/v1/federation/commands', async (req, res) => {
    const direction = typeof req.query.direction === 'string' ? req.query.direction : undefined;
    const commands = await prisma.federationCommand.findMany({
      where: { connection: { workspaceId: workspaceOf(res) }, ...(direction ? { direction } : {}) },
      orderBy: { createdAt: 'desc' },
      take: 100,
    });
    res.json({ commands: commands.map(commandView) });
  });

  router.get('/api/v1/federation/events', async (_req, res) => {
    const connections = await prisma.federationConnection.findMany({
      where: { workspaceId: workspaceOf(res) },
      select: { id: true },
    });
    const events = await prisma.federationEvent.findMany({
      where: { connectionId: { in: connections.map((connection) => connection.id) } },
      orderBy: { createdAt: 'desc' },
      take: 100,
    });
    res.json({ events });
  });

  router.get('/api/v1/federation/commands/:id', async (req, res) => {
    const { id } = parseParams(IdParams, req);
    const command = await prisma.federationCommand.findUnique({ where: { id }, include: { connection: true } });
    if (!command) throw new ApiError(404, 'not_found', `No command ${id}`);
    if (command.connection?.workspaceId !== workspaceOf(res))
      throw new ApiError(403, 'forbidden', `Command ${id} belongs to another workspace`);
    const { connection: _connection, ...view } = command;
    res.json(commandView(view));
  });

  return router;
}
