import { OutboundError, OutboundPolicy, outboundRequest } from '../platform/outbound-http';
import { signingKey, type InstanceIdentity, type InstanceKey, type PublicIdentity } from './identity';
import {
  CommandReplySchema,
  newNonce,
  PublicIdentitySchema,
  signRequest,
  verifyResponse,
  type CommandReply,
  type PeerKey,
} from './messages';
import { SignatureError } from './signatures';
import { parseStrictJson } from './strict-json';

/**
 * The federation HTTP client: signed requests to a peer and checks of its signed replies. Every request
 * goes through the instance's outbound policy (platform/outbound-http.ts); whatever fails on the way,
 * the caller learns only that the peer is unreachable (the detail stays in the error's cause, for logs).
 */
export const INCOMING_COMMAND_PATH = '/api/v1/federation/incoming/command';
export const INCOMING_EVENT_PATH = '/api/v1/federation/incoming/event';
export const HANDSHAKE_PATH = '/api/v1/federation/handshake';
export const INSTANCE_PATH = '/api/v1/federation/instance';
/** A reply larger than this is refused unread (a status reply carries the agent's diff: up to about 1 MB). */
export const MAX_REPLY_BYTES = 8 * 1024 * 1024;
const MAX_IDENTITY_BYTES = 64 * 1024;

/** How this instance reaches peers: its outbound policy and how long one request may take. */
export interface PeerTransport {
  policy: OutboundPolicy;
  timeoutMs: number;
}

/** The transport of an instance's settings (OUTBOUND_ALLOWED_NETWORKS, FEDERATION_PEER_TIMEOUT). */
export function peerTransport(settings: {
  OUTBOUND_ALLOWED_NETWORKS: string;
  FEDERATION_PEER_TIMEOUT: number;
}): PeerTransport {
  return {
    policy: new OutboundPolicy(settings.OUTBOUND_ALLOWED_NETWORKS),
    timeoutMs: settings.FEDERATION_PEER_TIMEOUT * 1000,
  };
}

export class PeerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const unreachable = (cause: unknown): PeerError => new PeerError('peer_unreachable', 'peer unreachable', { cause });

/** A peer's HTTP answer, as it arrived. */
export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** POSTs a body to a peer. A peer that cannot be reached (or may not be called) is a PeerError peer_unreachable. */
export async function post(
  transport: PeerTransport,
  url: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<RawReply> {
  try {
    return await outboundRequest(transport.policy, url, {
      method: 'POST',
      headers,
      body,
      timeoutMs: transport.timeoutMs,
      maxBytes: MAX_REPLY_BYTES,
    });
  } catch (error) {
    if (error instanceof OutboundError) throw unreachable(error);
    throw error;
  }
}

/** Signs a POST of `body` to `url` with `key` (a fresh signature nonce each time) and sends it. */
export function postSigned(transport: PeerTransport, url: string, body: Buffer, key: InstanceKey): Promise<RawReply> {
  return post(transport, url, body, signRequest(url, body, key).headers);
}

/** The error code of an unsigned refusal (`{success: false, error: {code}}`), or peer_error. */
export function refusalCode(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' && /^[a-z_]{1,64}$/.test(parsed.error.code)
      ? parsed.error.code
      : 'peer_error';
  } catch {
    return 'peer_error';
  }
}

/**
 * Accepts a reply only when it is signed by a key of that peer, over the exact bytes, and answers
 * this very message (inReplyTo, the request's envelope nonce, the peer's instanceId). Throws
 * SignatureError with a reply_* code otherwise.
 */
export function verifyReply(
  reply: RawReply,
  keys: PeerKey[],
  expected: { messageId: string; nonce: string; instanceId: string },
): CommandReply {
  try {
    verifyResponse(reply.status, reply.headers, reply.body, keys);
    const parsed = CommandReplySchema.parse(parseStrictJson(reply.body.toString('utf8')));
    if (
      parsed.inReplyTo !== expected.messageId ||
      parsed.requestNonce !== expected.nonce ||
      parsed.instanceId !== expected.instanceId
    ) {
      throw new SignatureError('mismatch', 'the reply answers another message');
    }
    return parsed;
  } catch (error) {
    const code = error instanceof SignatureError ? error.code : 'invalid';
    throw new SignatureError(
      code.startsWith('reply_') ? code : `reply_${code}`,
      error instanceof Error ? error.message : String(error),
    );
  }
}

/** Fetches and checks a peer's public identity; anything but a valid identity is "peer unreachable". */
export async function fetchPeerIdentity(transport: PeerTransport, baseUrl: string): Promise<PublicIdentity> {
  let answer;
  try {
    answer = await outboundRequest(transport.policy, new URL(INSTANCE_PATH, baseUrl).toString(), {
      method: 'GET',
      timeoutMs: transport.timeoutMs,
      maxBytes: MAX_IDENTITY_BYTES,
    });
  } catch (error) {
    if (error instanceof OutboundError || error instanceof TypeError) throw unreachable(error);
    throw error;
  }
  if (answer.status !== 200) throw unreachable(new Error(`answered ${answer.status} for its identity`));
  let body: unknown = null;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch {
    // not JSON: no valid identity
  }
  const identity = PublicIdentitySchema.safeParse(body);
  if (!identity.success)
    throw unreachable(
      new Error(`sent no valid identity: ${identity.error.issues.map((issue) => issue.message).join('; ')}`),
    );
  return identity.data;
}

/** Sends a signed handshake message (request, accept, reject, suspend, resume, disconnect, keys.rotate). */
export async function sendHandshake(
  transport: PeerTransport,
  identity: InstanceIdentity,
  self: PublicIdentity,
  peerUrl: string,
  type: string,
): Promise<void> {
  const nonce = newNonce();
  const url = new URL(HANDSHAKE_PATH, peerUrl).toString();
  const body = Buffer.from(JSON.stringify({ type, instance: self, timestamp: new Date().toISOString(), nonce }));
  const response = await post(
    transport,
    url,
    body,
    signRequest(url, body, signingKey(identity), Date.now(), nonce).headers,
  );
  if (response.status >= 300)
    throw new PeerError(refusalCode(response.body), `the peer refused ${type} with ${response.status}`);
}
