import type { z } from 'zod';
import { isUniqueViolation, Prisma, type PrismaClient } from '../prisma/client';
import {
  bodyHash,
  CANCELLED_SPAWN,
  checkTimeWindow,
  COMMAND_TYPES,
  commandAllowed,
  CommandEnvelopeSchema,
  EventEnvelopeSchema,
  JSON_CONTENT_TYPE,
  keyValidAt,
  MAX_SIGNATURE_AGE_SECONDS,
  signResponse,
  type CommandEnvelope,
  type CommandReply,
  type EventEnvelope,
} from './messages';
import type { InstanceKey } from './identity';
import {
  checkContentDigest,
  parseSignatureHeaders,
  publicKeyFromRaw,
  REQUEST_COMPONENTS,
  requestComponents,
  SignatureError,
  verifyBase,
  type ParsedSignature,
} from './signatures';
import { parseStrictJson, StrictJsonError } from './strict-json';
import { describeIssues } from '../shared/zod-issues';

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

/** What the HTTP layer sends back for a signed message: a signed reply, or an unsigned refusal. */
export interface SignedMessageResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** A 200 with the reply signed over its exact bytes. */
export function signedReply(reply: CommandReply, key: InstanceKey): SignedMessageResponse {
  const body = Buffer.from(JSON.stringify(reply));
  return { status: 200, headers: signResponse(200, body, key), body };
}

/** Refusals come before anything was verified, so they are not signed. */
export function refusal(rejection: FederationRejection): SignedMessageResponse {
  return {
    status: rejection.status,
    headers: { 'content-type': JSON_CONTENT_TYPE },
    body: Buffer.from(JSON.stringify({ success: false, error: { code: rejection.code, message: rejection.message } })),
  };
}

function rejectionFrom(
  error: SignatureError | StrictJsonError,
  connectionId: string | null = null,
): FederationRejection {
  return new FederationRejection(STATUS_BY_CODE[error.code] ?? 400, error.code, error.message, connectionId);
}

export interface IncomingRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The header lines as they arrived (name, value, name, value, …): a repeated line is visible only here. */
  rawHeaders: string[];
  body: Buffer;
  /** The caller's address, for limits on what an unauthenticated caller can make this instance do. */
  source: string;
}

/** Headers the profile allows once: a second line would be joined into one value by the HTTP parser. */
const SINGLE_LINE_HEADERS = ['content-type', 'content-digest', 'signature', 'signature-input'];

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
  for (const name of SINGLE_LINE_HEADERS) {
    const lines = request.rawHeaders.filter((value, index) => index % 2 === 0 && value.toLowerCase() === name).length;
    if (lines > 1) throw new FederationRejection(400, 'malformed_header', `the ${name} header must appear once`);
  }
  if (request.headers['content-type'] !== JSON_CONTENT_TYPE)
    throw new FederationRejection(415, 'wrong_content_type', `the body must be ${JSON_CONTENT_TYPE}`);
  if (typeof request.headers['content-digest'] !== 'string')
    throw new FederationRejection(401, 'missing_header', 'the content-digest header is required');
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
export function checkSignatureAndDigest(
  request: IncomingRequest,
  parsed: ParsedSignature,
  publicKey: string,
  authority: string,
  connectionId: string | null,
): void {
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
export async function consumeNonce(
  prisma: PrismaClient,
  parsed: ParsedSignature,
  connectionId: string | null,
): Promise<void> {
  try {
    await prisma.federationNonce.create({
      data: {
        keyId: parsed.params.keyid,
        nonce: parsed.params.nonce,
        expiresAt: new Date((parsed.params.created + MAX_SIGNATURE_AGE_SECONDS * 2) * 1000),
      },
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new FederationRejection(409, 'nonce_replayed', 'this signature nonce was already used', connectionId);
    }
    throw error;
  }
}

export function parseBody(request: IncomingRequest, connectionId: string | null): unknown {
  try {
    return parseStrictJson(request.body.toString('utf8'));
  } catch (error) {
    if (error instanceof StrictJsonError) throw rejectionFrom(error, connectionId);
    throw error;
  }
}

/** The stored key a signature names, with its connection; unknown keys say nothing about any connection. */
async function storedKey(prisma: PrismaClient, keyId: string) {
  const key = await prisma.federationPeerKey.findUnique({
    where: { keyId },
    include: { connection: { include: { keys: true } } },
  });
  if (!key)
    throw new FederationRejection(401, 'unknown_key', 'the signing key belongs to no connection of this instance');
  return key;
}

export interface IncomingCheckDeps {
  prisma: PrismaClient;
  /** host[:port] of PUBLIC_URL. */
  authority: string;
  rateLimitPerMinute: number;
  now?: () => number;
}

export type Admission =
  | { kind: 'new' | 'in_progress'; connection: ConnectionWithKeys; envelope: CommandEnvelope; bodyHash: string }
  | { kind: 'repeat'; connection: ConnectionWithKeys; reply: unknown; status: number };

interface Verified<T> {
  connection: ConnectionWithKeys;
  envelope: T;
  bodyHash: string;
}

/**
 * The checks every signed message from a peer passes, in this order: (size, by the body parser)
 * single header lines, content type, strict header parse, required parameters, time window, a known
 * key, signature, digest, nonce never seen; then, the sender having proved it holds the key for this
 * exact and fresh message: key not expired, connection ACTIVE, strict JSON, envelope schema, envelope
 * instanceId = the key's peer. Refusals before that proof are attributed to no connection: they count
 * against no connection's rate limit and tell the caller nothing about any connection.
 */
async function verifySigned<T extends { instanceId: string }>(
  deps: IncomingCheckDeps,
  request: IncomingRequest,
  schema: z.ZodType<T>,
  now: number,
): Promise<Verified<T>> {
  const parsed = parseSignedRequest(request, now);
  const key = await storedKey(deps.prisma, parsed.params.keyid);
  checkSignatureAndDigest(request, parsed, key.publicKey, deps.authority, null);
  await consumeNonce(deps.prisma, parsed, null);

  const { connection } = key;
  if (!keyValidAt(key, now))
    throw new FederationRejection(401, 'key_expired', 'the signing key was rotated out', connection.id);
  if (connection.status !== 'ACTIVE')
    throw new FederationRejection(
      403,
      `connection_${connection.status.toLowerCase()}`,
      `the connection is ${connection.status}`,
      connection.id,
    );

  const envelopeResult = schema.safeParse(parseBody(request, connection.id));
  if (!envelopeResult.success) {
    throw new FederationRejection(400, 'invalid_envelope', describeIssues(envelopeResult.error), connection.id);
  }
  const envelope = envelopeResult.data;
  if (envelope.instanceId !== connection.peerInstanceId)
    throw new FederationRejection(
      403,
      'instance_mismatch',
      'the envelope names another instance than the signing key',
      connection.id,
    );
  return { connection, envelope, bodyHash: bodyHash(request.body) };
}

/**
 * Verifies an incoming COMMAND before anything runs: the checks of every signed message, then
 * messageId (same body: the stored reply, or `in_progress` while the first copy runs; other body:
 * refused), command type allowed, rate limit.
 */
export async function checkIncomingCommand(deps: IncomingCheckDeps, request: IncomingRequest): Promise<Admission> {
  const now = deps.now?.() ?? Date.now();
  const { connection, envelope, bodyHash: hash } = await verifySigned(deps, request, CommandEnvelopeSchema, now);
  const seen = await deps.prisma.federationCommand.findUnique({
    where: {
      connectionId_direction_messageId: {
        connectionId: connection.id,
        direction: 'inbound',
        messageId: envelope.messageId,
      },
    },
  });
  if (seen?.status === CANCELLED_SPAWN) {
    throw new FederationRejection(
      409,
      'spawn_cancelled',
      'the hub cancelled this spawn before it was taken: it will never run',
      connection.id,
    );
  }
  if (seen && seen.bodyHash !== hash)
    throw new FederationRejection(
      409,
      'message_id_conflict',
      'this messageId was used for a different body',
      connection.id,
    );
  if (seen && seen.reply !== null) return { kind: 'repeat', connection, reply: seen.reply, status: 200 };
  if (
    !(COMMAND_TYPES as readonly string[]).includes(envelope.commandType) ||
    !commandAllowed(connection.allowedCommandTypes, envelope.commandType)
  ) {
    throw new FederationRejection(
      403,
      'command_not_allowed',
      `this connection may not send ${envelope.commandType}`,
      connection.id,
    );
  }
  // A copy of this message is being handled right now: the caller waits for its answer (it counted against the limit
  // already).
  if (seen) return { kind: 'in_progress', connection, envelope, bodyHash: hash };
  const recent = await deps.prisma.federationCommand.count({
    where: { connectionId: connection.id, direction: 'inbound', createdAt: { gt: new Date(now - 60_000) } },
  });
  if (recent >= deps.rateLimitPerMinute) throw rateLimited(deps, 'commands', connection.id);
  return { kind: 'new', connection, envelope, bodyHash: hash };
}

/** A connection that sent more than its limit of commands (or events) in the last minute. */
const rateLimited = (deps: IncomingCheckDeps, what: string, connectionId: string): FederationRejection =>
  new FederationRejection(
    429,
    'rate_limited',
    `more than ${deps.rateLimitPerMinute} ${what} in a minute`,
    connectionId,
  );

/** Verifies an incoming EVENT: the checks of every signed message, then the rate limit (events count on their own). */
export async function checkIncomingEvent(
  deps: IncomingCheckDeps,
  request: IncomingRequest,
): Promise<{ connection: ConnectionWithKeys; envelope: EventEnvelope }> {
  const now = deps.now?.() ?? Date.now();
  const { connection, envelope } = await verifySigned(deps, request, EventEnvelopeSchema, now);
  const recent = await deps.prisma.federationEvent.count({
    where: { connectionId: connection.id, createdAt: { gt: new Date(now - 60_000) } },
  });
  if (recent >= deps.rateLimitPerMinute) throw rateLimited(deps, 'events', connection.id);
  return { connection, envelope };
}
