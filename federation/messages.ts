import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { InstanceKey } from './identity';
import type { OutboundCommand } from '../workflows/federation-command/contract';
import {
  checkContentDigest,
  contentDigest,
  keyIdFor,
  parseSignatureHeaders,
  publicKeyFromRaw,
  requestComponents,
  RESPONSE_COMPONENTS,
  responseComponents,
  signBase,
  SignatureError,
  verifyBase,
  type ParsedSignature,
} from './signatures';

/** The federation's message shapes and how requests and replies are signed and checked. */
export const COMMAND_TYPES = [
  'agent.spawn',
  'agent.status',
  'agent.kill',
  'agent.result',
  'agent.message',
  'agent.approval',
  'agent.pause',
  'agent.resume',
] as const;
/** Steering a run (issue 24) asks less of it than stopping it: a connection allowed agent.kill may steer. */
export const STEERING_COMMANDS: readonly string[] = ['agent.message', 'agent.approval', 'agent.pause', 'agent.resume'];
/**
 * agent.result reads what agent.status reports (the result's commits): a connection allowed one may send both; one
 * allowed agent.kill may send the steering commands.
 */
export const commandAllowed = (allowed: readonly string[], commandType: string): boolean =>
  allowed.includes(commandType) ||
  (commandType === 'agent.result' && allowed.includes('agent.status')) ||
  (STEERING_COMMANDS.includes(commandType) && allowed.includes('agent.kill'));
/** The status of an inbound row that claims a spawn's messageId for a kill that came first: that spawn never runs. */
export const CANCELLED_SPAWN = 'cancelled';
export type CommandType = (typeof COMMAND_TYPES)[number];

/** A signature may live 60 s; a receiver accepts `created` up to 5 s ahead and at most 300 s old. */
export const SIGNATURE_LIFETIME_SECONDS = 60;
export const MAX_FUTURE_SKEW_SECONDS = 5;
export const MAX_SIGNATURE_AGE_SECONDS = 300;
export const MAX_BODY_BYTES = 64 * 1024;
export const JSON_CONTENT_TYPE = 'application/json';

/** What GET /api/v1/federation/instance publishes, and what a peer's identity must look like. */
/** A key's id is the id derived from the key itself (keyIdFor): a peer cannot name a key after another's. */
const PublicKeySchema = z
  .object({
    keyId: z.string().min(1).max(64),
    algorithm: z.literal('ed25519'),
    publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a 32-byte Ed25519 key in base64url'),
    status: z.enum(['active', 'retiring']),
    notAfter: z.iso.datetime({ offset: true }).nullable(),
  })
  .refine((key) => keyIdFor(key.publicKey) === key.keyId, {
    message: 'keyId is not the id derived from publicKey',
    path: ['keyId'],
  });
/**
 * Instance ids are plain ASCII, so two ids that look alike are the same id: no Unicode normalisation
 * forms, homoglyphs or invisible characters make a second peer that reads like the first.
 */
export const InstanceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, 'must be 1 to 100 ASCII letters, digits, ".", "_", ":" or "-"');
/** A display name: NFC-normalised, with no invisible, control or line-separating characters. */
export const InstanceNameSchema = z
  .string()
  .max(100)
  .refine(
    (name) => name === name.normalize('NFC') && !/[\p{C}\p{Zl}\p{Zp}]/u.test(name),
    'must be NFC-normalised text without invisible or control characters',
  );

export const PublicIdentitySchema = z.object({
  instanceId: InstanceIdSchema,
  name: InstanceNameSchema,
  baseUrl: z.url({ protocol: /^https?$/ }),
  keys: z
    .array(PublicKeySchema)
    .min(1)
    .max(10)
    .refine((keys) => new Set(keys.map((key) => key.keyId)).size === keys.length, 'a key is listed twice'),
});

export const CommandEnvelopeSchema = z.strictObject({
  messageId: z.uuid(),
  instanceId: InstanceIdSchema,
  commandType: z.string().min(1).max(100),
  payload: z.record(z.string(), z.unknown()),
  timestamp: z.iso.datetime({ offset: true }),
  nonce: z.string().min(16).max(128),
});
export type CommandEnvelope = z.infer<typeof CommandEnvelopeSchema>;

/** Serializes a command envelope in its fixed field order: the same envelope always gives the same bytes. */
export function commandBody(envelope: CommandEnvelope): Buffer {
  const { messageId, instanceId, commandType, payload, timestamp, nonce } = envelope;
  return Buffer.from(JSON.stringify({ messageId, instanceId, commandType, payload, timestamp, nonce }));
}

/** EVENT messages: a spoke tells the hub what happened to an agent the hub spawned (no reply data). */
export const EVENT_TYPES = ['agent.lifecycle'] as const;

export const EventEnvelopeSchema = z.strictObject({
  /** The event id: the hub deduplicates on it. */
  messageId: z.uuid(),
  instanceId: InstanceIdSchema,
  eventType: z.enum(EVENT_TYPES),
  payload: z.record(z.string(), z.unknown()),
  timestamp: z.iso.datetime({ offset: true }),
  nonce: z.string().min(16).max(128),
});
export type EventEnvelope = z.infer<typeof EventEnvelopeSchema>;

export const CommandReplySchema = z.strictObject({
  messageId: z.uuid(),
  inReplyTo: z.uuid(),
  instanceId: z.string(),
  /** The nonce of the request this answers: binds the reply to that one signed request. */
  requestNonce: z.string(),
  status: z.enum(['ok', 'error']),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  timestamp: z.iso.datetime({ offset: true }),
});
export type CommandReply = z.infer<typeof CommandReplySchema>;

export const newNonce = (): string => randomBytes(18).toString('base64url');
/** A COMMAND to send through a connection: its messageId, nonce and timestamp are fixed here, for every retry. */
export const outboundCommand = (
  command: Pick<OutboundCommand, 'connectionId' | 'commandType' | 'payload'>,
): OutboundCommand => ({ ...command, messageId: randomUUID(), nonce: newNonce(), timestamp: new Date().toISOString() });
export const bodyHash = (body: Buffer): string => createHash('sha256').update(body).digest('hex');

export interface SignedRequest {
  body: Buffer;
  headers: Record<string, string>;
  nonce: string;
}

function lifetime(now: number): { created: number; expires: number } {
  const created = Math.floor(now / 1000);
  return { created, expires: created + SIGNATURE_LIFETIME_SECONDS };
}

/** Signs a POST of `body` to `url` with this instance's key. */
export function signRequest(
  url: string,
  body: Buffer,
  key: InstanceKey,
  now = Date.now(),
  nonce = newNonce(),
): SignedRequest {
  const target = new URL(url);
  const digest = contentDigest(body);
  const headers = signBase(
    requestComponents('POST', target.host, target.pathname, JSON_CONTENT_TYPE, digest),
    { ...lifetime(now), nonce, keyid: key.keyId },
    key.privateKey,
  );
  return { body, nonce, headers: { 'content-type': JSON_CONTENT_TYPE, 'content-digest': digest, ...headers } };
}

/** Signs a reply: it covers the status, the content type and the digest of the exact body. */
export function signResponse(status: number, body: Buffer, key: InstanceKey, now = Date.now()): Record<string, string> {
  const digest = contentDigest(body);
  const headers = signBase(
    responseComponents(status, JSON_CONTENT_TYPE, digest),
    { ...lifetime(now), nonce: newNonce(), keyid: key.keyId },
    key.privateKey,
  );
  return { 'content-type': JSON_CONTENT_TYPE, 'content-digest': digest, ...headers };
}

/** Refuses a signature outside its validity window (cheap, so it is checked before any key lookup). */
export function checkTimeWindow(parsed: ParsedSignature, now = Date.now()): void {
  const seconds = Math.floor(now / 1000);
  const { created, expires } = parsed.params;
  if (created > seconds + MAX_FUTURE_SKEW_SECONDS)
    throw new SignatureError('signature_not_yet_valid', 'the signature was created in the future');
  if (expires <= seconds || seconds - created > MAX_SIGNATURE_AGE_SECONDS)
    throw new SignatureError('signature_expired', 'the signature has expired');
  if (expires <= created || expires - created > MAX_SIGNATURE_AGE_SECONDS)
    throw new SignatureError('malformed_header', 'the signature lifetime is invalid');
}

export interface PeerKey {
  keyId: string;
  publicKey: string;
  notAfter: Date | null;
}

/** Whether a peer's key may still sign at `now` (ms): it has no end, or its end (notAfter) is later. */
export function keyValidAt(key: { notAfter: Date | null }, now: number): boolean {
  return key.notAfter === null || key.notAfter.getTime() > now;
}

/** The hub's check of a signed reply: a key of that peer, in its window, over the exact body. */
export function verifyResponse(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  body: Buffer,
  keys: PeerKey[],
  now = Date.now(),
): void {
  // The signature covers the Content-Type exactly as sent; the profile allows only application/json.
  const contentType = headers['content-type'];
  if (contentType !== JSON_CONTENT_TYPE)
    throw new SignatureError('wrong_content_type', `the reply's Content-Type must be exactly ${JSON_CONTENT_TYPE}`);
  const parsed = parseSignatureHeaders(headers, RESPONSE_COMPONENTS);
  checkTimeWindow(parsed, now);
  const key = keys.find((candidate) => candidate.keyId === parsed.params.keyid);
  if (!key || !keyValidAt(key, now))
    throw new SignatureError('unknown_key', 'the reply is signed with a key this peer does not hold');
  const digest = headers['content-digest'];
  const components = responseComponents(status, JSON_CONTENT_TYPE, typeof digest === 'string' ? digest : '');
  if (!verifyBase(components, parsed, publicKeyFromRaw(key.publicKey)))
    throw new SignatureError('bad_signature', 'the reply signature does not verify');
  checkContentDigest(headers, body);
}
