import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { InstanceKey } from './identity';
import {
  checkContentDigest,
  contentDigest,
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
export const COMMAND_TYPES = ['agent.spawn', 'agent.status', 'agent.kill'] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

/** A signature may live 60 s; a receiver accepts `created` up to 5 s ahead and at most 300 s old. */
export const SIGNATURE_LIFETIME_SECONDS = 60;
export const MAX_FUTURE_SKEW_SECONDS = 5;
export const MAX_SIGNATURE_AGE_SECONDS = 300;
export const MAX_BODY_BYTES = 64 * 1024;
export const JSON_CONTENT_TYPE = 'application/json';

/** What GET /api/v1/federation/instance publishes, and what a peer's identity must look like. */
const PublicKeySchema = z.object({ keyId: z.string(), algorithm: z.literal('ed25519'), publicKey: z.string(), status: z.enum(['active', 'retiring']), notAfter: z.string().nullable() });
export const PublicIdentitySchema = z.object({
  instanceId: z.string().min(1).max(100),
  name: z.string().max(100),
  baseUrl: z.url({ protocol: /^https?$/ }),
  keys: z.array(PublicKeySchema).min(1).max(10),
});

export const CommandEnvelopeSchema = z.strictObject({
  messageId: z.uuid(),
  instanceId: z.string().min(1).max(100),
  commandType: z.string().min(1).max(100),
  payload: z.record(z.string(), z.unknown()),
  timestamp: z.iso.datetime({ offset: true }),
  nonce: z.string().min(16).max(128),
});
export type CommandEnvelope = z.infer<typeof CommandEnvelopeSchema>;

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
export function signRequest(url: string, body: Buffer, key: InstanceKey, now = Date.now(), nonce = newNonce()): SignedRequest {
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
  if (created > seconds + MAX_FUTURE_SKEW_SECONDS) throw new SignatureError('signature_not_yet_valid', 'the signature was created in the future');
  if (expires <= seconds || seconds - created > MAX_SIGNATURE_AGE_SECONDS) throw new SignatureError('signature_expired', 'the signature has expired');
  if (expires <= created || expires - created > MAX_SIGNATURE_AGE_SECONDS) throw new SignatureError('malformed_header', 'the signature lifetime is invalid');
}

export interface PeerKey {
  keyId: string;
  publicKey: string;
  notAfter: Date | null;
}

/** The hub's check of a signed reply: a key of that peer, in its window, over the exact body. */
export function verifyResponse(status: number, headers: Record<string, string | string[] | undefined>, body: Buffer, keys: PeerKey[], now = Date.now()): void {
  const contentType = headers['content-type'];
  if (typeof contentType !== 'string' || contentType.split(';')[0]?.trim() !== JSON_CONTENT_TYPE) throw new SignatureError('wrong_content_type', 'the reply is not application/json');
  const parsed = parseSignatureHeaders(headers, RESPONSE_COMPONENTS);
  checkTimeWindow(parsed, now);
  const key = keys.find((candidate) => candidate.keyId === parsed.params.keyid);
  if (!key || (key.notAfter !== null && key.notAfter.getTime() <= now)) throw new SignatureError('unknown_key', 'the reply is signed with a key this peer does not hold');
  const digest = headers['content-digest'];
  const components = responseComponents(status, JSON_CONTENT_TYPE, typeof digest === 'string' ? digest : '');
  if (!verifyBase(components, parsed, publicKeyFromRaw(key.publicKey))) throw new SignatureError('bad_signature', 'the reply signature does not verify');
  checkContentDigest(headers, body);
}
