import { randomUUID } from 'node:crypto';
import type { FederationCommand, Prisma, PrismaClient } from '../prisma/client';
import { signingKey, type InstanceIdentity, type PublicIdentity } from './identity';
import type { ConnectionWithKeys } from './incoming';
import { bodyHash, CommandReplySchema, newNonce, PublicIdentitySchema, signRequest, verifyResponse, type CommandEnvelope } from './messages';
import { SignatureError } from './signatures';
import { parseStrictJson } from './strict-json';

/** The federation HTTP client: signed commands and handshakes to a peer, and checks of its signed replies. */
export const INCOMING_COMMAND_PATH = '/api/v1/federation/incoming/command';
export const HANDSHAKE_PATH = '/api/v1/federation/handshake';
export const INSTANCE_PATH = '/api/v1/federation/instance';
const PEER_TIMEOUT_MS = 30_000;

export class PeerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function post(url: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
  } catch (error) {
    throw new PeerError('peer_unreachable', `${url} did not answer (${error instanceof Error ? error.message : String(error)})`);
  }
  return { status: response.status, headers: Object.fromEntries(response.headers.entries()), body: Buffer.from(await response.arrayBuffer()) };
}

function errorCodeOf(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : 'peer_error';
  } catch {
    return 'peer_error';
  }
}

/** Fetches and checks a peer's public identity. */
export async function fetchPeerIdentity(baseUrl: string): Promise<PublicIdentity> {
  let response: Response;
  try {
    response = await fetch(new URL(INSTANCE_PATH, baseUrl), { redirect: 'error', signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
  } catch (error) {
    throw new PeerError('peer_unreachable', `${baseUrl} did not answer (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!response.ok) throw new PeerError('peer_error', `${baseUrl} answered ${response.status} for its identity`);
  const identity = PublicIdentitySchema.safeParse(await response.json().catch(() => null));
  if (!identity.success) throw new PeerError('peer_error', `${baseUrl} sent no valid identity`);
  return identity.data;
}

/** Sends a signed handshake message (request, accept, reject, suspend, resume, disconnect, keys.rotate). */
export async function sendHandshake(identity: InstanceIdentity, self: PublicIdentity, peerUrl: string, type: string, extra: Record<string, unknown> = {}): Promise<void> {
  const nonce = newNonce();
  const body = Buffer.from(JSON.stringify({ type, instance: self, ...extra, timestamp: new Date().toISOString(), nonce }));
  const signed = signRequest(new URL(HANDSHAKE_PATH, peerUrl).toString(), body, signingKey(identity), Date.now(), nonce);
  const response = await post(new URL(HANDSHAKE_PATH, peerUrl).toString(), body, signed.headers);
  if (response.status >= 300) throw new PeerError(errorCodeOf(response.body), `the peer refused ${type} with ${response.status}`);
}

/**
 * Sends one signed COMMAND, records it (direction outbound) with its timings, and accepts the reply
 * only when it is signed by a key of that peer, over the exact bytes, and answers this message.
 */
export async function sendCommand(
  prisma: PrismaClient,
  identity: InstanceIdentity,
  connection: ConnectionWithKeys,
  commandType: string,
  payload: Record<string, unknown>,
): Promise<FederationCommand> {
  const started = Date.now();
  const nonce = newNonce();
  const envelope: CommandEnvelope = { messageId: randomUUID(), instanceId: identity.instanceId, commandType, payload, timestamp: new Date(started).toISOString(), nonce };
  const body = Buffer.from(JSON.stringify(envelope));
  const record = await prisma.federationCommand.create({
    data: { id: randomUUID(), direction: 'outbound', connectionId: connection.id, messageId: envelope.messageId, commandType, bodyHash: bodyHash(body), status: 'sending', payload: payload as Prisma.InputJsonObject },
  });
  const finish = (data: { status: string; reply?: object; errorCode?: string; error?: string }): Promise<FederationCommand> =>
    prisma.federationCommand.update({ where: { id: record.id }, data: { ...data, completedAt: new Date(), durationMs: Date.now() - started } });

  const url = new URL(INCOMING_COMMAND_PATH, connection.peerUrl).toString();
  const signed = signRequest(url, body, signingKey(identity), started, nonce);
  let response;
  try {
    response = await post(url, body, signed.headers);
  } catch (error) {
    return await finish({ status: 'failed', errorCode: error instanceof PeerError ? error.code : 'peer_error', error: error instanceof Error ? error.message : String(error) });
  }
  if (response.status !== 200) {
    // Refusals come before the peer verified anything, so they are unsigned: recorded, not trusted.
    return finish({ status: 'rejected', errorCode: errorCodeOf(response.body), error: `the peer answered ${response.status}` });
  }
  try {
    verifyResponse(response.status, response.headers, response.body, connection.keys);
    const reply = CommandReplySchema.parse(parseStrictJson(response.body.toString('utf8')));
    if (reply.inReplyTo !== envelope.messageId || reply.requestNonce !== nonce || reply.instanceId !== connection.peerInstanceId) {
      throw new SignatureError('reply_mismatch', 'the reply answers another message');
    }
    return await finish(reply.status === 'ok' ? { status: 'succeeded', reply } : { status: 'failed', reply, errorCode: reply.error?.code ?? 'peer_error', error: reply.error?.message ?? 'failed' });
  } catch (error) {
    const code = error instanceof SignatureError ? error.code : 'invalid_reply';
    return finish({ status: 'failed', errorCode: code.startsWith('reply_') ? code : `reply_${code}`, error: error instanceof Error ? error.message : String(error) });
  }
}
