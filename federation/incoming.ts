import { Prisma, type PrismaClient } from '../prisma/client';
import {
  bodyHash,
  checkTimeWindow,
  COMMAND_TYPES,
  CommandEnvelopeSchema,
  JSON_CONTENT_TYPE,
  MAX_SIGNATURE_AGE_SECONDS,
  type CommandEnvelope,
} from './messages';
import { checkContentDigest, parseSignatureHeaders, publicKeyFromRaw, REQUEST_COMPONENTS, requestComponents, SignatureError, verifyBase, type ParsedSignature } from './signatures';
import { parseStrictJson, StrictJsonError } from './strict-json';

/** A refused incoming message: a 4xx with a machine-readable code; nothing runs. */
export class FederationRejection extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The connection the message was attributed to, once the key identified it. */
    readonly connectionId: string | null = null,
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  missing_header: 401,
  signature_expired: 401,
  signature_not_yet_valid: 401,
  unknown_key: 401,
  key_expired: 401,
  bad_signature: 401,
  malformed_key: 401,
};

function rejectionFrom(error: SignatureError | StrictJsonError, connectionId: string | null = null): FederationRejection {
  return new FederationRejection(STATUS_BY_CODE[error.code] ?? 400, error.code, error.message, connectionId);
}

export interface IncomingRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type ConnectionWithKeys = Prisma.FederationConnectionGetPayload<{ include: { keys: true } }>;

/** Our own authority (from PUBLIC_URL), not the Host header: signatures for any other host are refused. */
function componentValues(request: IncomingRequest, authority: string): Array<[string, string]> {
  const header = (name: string): string => {
    const value = request.headers[name];
    return typeof value === 'string' ? value : '';
  };
  return requestComponents(request.method, authority, request.path, header('content-type'), header('content-digest'));
}

/** Steps that need no key: content type, strict header parse, required parameters, time window. */
export function parseSignedRequest(request: IncomingRequest, now = Date.now()): ParsedSignature {
  if (request.headers['content-type'] !== JSON_CONTENT_TYPE) throw new FederationRejection(415, 'wrong_content_type', `the body must be ${JSON_CONTENT_TYPE}`);
  if (typeof request.headers['content-digest'] !== 'string') throw new FederationRejection(401, 'missing_header', 'the content-digest header is required');
  try {
    const parsed = parseSignatureHeaders(request.headers, REQUEST_COMPONENTS);
    checkTimeWindow(parsed, now);
    return parsed;
  } catch (error) {
    if (error instanceof SignatureError) throw rejectionFrom(error);
    throw error;
  }
}

/** Signature with the given key, then the digest against the raw bytes. */
export function checkSignatureAndDigest(request: IncomingRequest, parsed: ParsedSignature, publicKey: string, authority: string, connectionId: string | null): void {
  try {
    if (!verifyBase(componentValues(request, authority), parsed, publicKeyFromRaw(publicKey))) {
      throw new SignatureError('bad_signature', 'the signature does not verify');
    }
    checkContentDigest(request.headers, request.body);
  } catch (error) {
    if (error instanceof SignatureError) throw rejectionFrom(error, connectionId);
    throw error;
  }
}

/** Records the nonce; a second use of it (even after a restart) is a replay. */
export async function consumeNonce(prisma: PrismaClient, parsed: ParsedSignature, connectionId: string | null): Promise<void> {
  try {
    await prisma.federationNonce.create({
      data: { keyId: parsed.params.keyid, nonce: parsed.params.nonce, expiresAt: new Date((parsed.params.created + MAX_SIGNATURE_AGE_SECONDS * 2) * 1000) },
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
      throw new FederationRejection(409, 'nonce_replayed', 'this signature nonce was already used', connectionId);
    }
    throw error;
  }
}

/** Deletes nonces whose signatures can no longer pass the time window; the API runs it periodically. */
export async function pruneExpiredNonces(prisma: PrismaClient, now = Date.now()): Promise<number> {
  const { count } = await prisma.federationNonce.deleteMany({ where: { expiresAt: { lt: new Date(now) } } });
  return count;
}

export function parseBody(request: IncomingRequest, connectionId: string | null): unknown {
  try {
    return parseStrictJson(request.body.toString('utf8'));
  } catch (error) {
    if (error instanceof StrictJsonError) throw rejectionFrom(error, connectionId);
    throw error;
  }
}

/** Finds the signing key and its ACTIVE connection (the key still valid). */
async function activeKey(prisma: PrismaClient, keyId: string, now: number): Promise<{ publicKey: string; connection: ConnectionWithKeys }> {
  const key = await prisma.federationPeerKey.findUnique({ where: { keyId }, include: { connection: { include: { keys: true } } } });
  if (!key) throw new FederationRejection(401, 'unknown_key', 'the signing key belongs to no connection of this instance');
  if (key.notAfter !== null && key.notAfter.getTime() <= now) throw new FederationRejection(401, 'key_expired', 'the signing key was rotated out', key.connectionId);
  if (key.connection.status !== 'ACTIVE') {
    throw new FederationRejection(403, `connection_${key.connection.status.toLowerCase()}`, `the connection is ${key.connection.status}`, key.connectionId);
  }
  return key;
}

export interface AdmissionDeps {
  prisma: PrismaClient;
  /** host[:port] of PUBLIC_URL. */
  authority: string;
  rateLimitPerMinute: number;
  now?: () => number;
}

export type Admission =
  | { kind: 'new'; connection: ConnectionWithKeys; envelope: CommandEnvelope; bodyHash: string }
  | { kind: 'repeat'; connection: ConnectionWithKeys; reply: unknown; status: number };

/**
 * Verifies an incoming COMMAND before anything runs, in this order: (size, by the body parser)
 * content type, strict header parse, required parameters, time window, key of an ACTIVE connection,
 * signature, digest, nonce never seen, body and envelope, messageId (same body: the stored reply;
 * other body: refused), command type allowed, rate limit.
 */
export async function admitCommand(deps: AdmissionDeps, request: IncomingRequest): Promise<Admission> {
  const now = deps.now?.() ?? Date.now();
  const parsed = parseSignedRequest(request, now);
  const { publicKey, connection } = await activeKey(deps.prisma, parsed.params.keyid, now);
  checkSignatureAndDigest(request, parsed, publicKey, deps.authority, connection.id);
  await consumeNonce(deps.prisma, parsed, connection.id);

  const envelopeResult = CommandEnvelopeSchema.safeParse(parseBody(request, connection.id));
  if (!envelopeResult.success) {
    throw new FederationRejection(400, 'invalid_envelope', envelopeResult.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '), connection.id);
  }
  const envelope = envelopeResult.data;
  if (envelope.instanceId !== connection.peerInstanceId) throw new FederationRejection(403, 'instance_mismatch', 'the envelope names another instance than the signing key', connection.id);

  const hash = bodyHash(request.body);
  const seen = await deps.prisma.federationCommand.findUnique({
    where: { connectionId_direction_messageId: { connectionId: connection.id, direction: 'inbound', messageId: envelope.messageId } },
  });
  if (seen) {
    if (seen.bodyHash !== hash) throw new FederationRejection(409, 'message_id_conflict', 'this messageId was used for a different body', connection.id);
    if (seen.reply === null) throw new FederationRejection(409, 'message_in_progress', 'this message is still being processed', connection.id);
    return { kind: 'repeat', connection, reply: seen.reply, status: 200 };
  }
  if (!(COMMAND_TYPES as readonly string[]).includes(envelope.commandType) || !connection.allowedCommandTypes.includes(envelope.commandType)) {
    throw new FederationRejection(403, 'command_not_allowed', `this connection may not send ${envelope.commandType}`, connection.id);
  }
  const recent = await deps.prisma.federationCommand.count({
    where: { connectionId: connection.id, direction: 'inbound', createdAt: { gt: new Date(now - 60_000) } },
  });
  if (recent >= deps.rateLimitPerMinute) throw new FederationRejection(429, 'rate_limited', `more than ${deps.rateLimitPerMinute} commands in a minute`, connection.id);
  return { kind: 'new', connection, envelope, bodyHash: hash };
}
