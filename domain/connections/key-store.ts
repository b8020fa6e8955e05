import type { PublicIdentity, PublicKeyInfo } from '../../federation/identity';
import type { Prisma, PrismaClient } from '../../prisma/client';
import { DomainError } from '../errors';

/**
 * The keys of peers. The rules that keep one peer from taking over another's keys or connection:
 * a key id belongs to one connection forever; keys are added to a connection only when it is created
 * or by a message signed with a key it already holds (rotation, or an operator's re-request that the
 * peer's published keys continue); a key's validity only ever shrinks, and only by a message signed
 * with that very key. (That a key id is the id derived from the key is checked where identities are
 * parsed: federation/messages.ts.)
 */
export interface ConnectionFields {
  status: string;
  initiatedBy: string;
  workspaceId: string | null;
  allowedCommandTypes: string[];
}

type Tx = Prisma.TransactionClient;

const notAfterOf = (key: PublicKeyInfo): Date | null => (key.notAfter ? new Date(key.notAfter) : null);

/** Adds the listed keys this connection does not hold yet; a key id another connection holds is refused. */
async function addKeys(tx: Tx, connectionId: string, keys: PublicKeyInfo[]): Promise<void> {
  const stored = await tx.federationPeerKey.findMany({ where: { keyId: { in: keys.map((key) => key.keyId) } } });
  const foreign = stored.find((key) => key.connectionId !== connectionId);
  if (foreign) throw new DomainError('conflict', 'key_in_use', `key ${foreign.keyId} belongs to another connection`);
  const held = new Set(stored.map((key) => key.keyId));
  for (const key of keys.filter((candidate) => !held.has(candidate.keyId))) {
    await tx.federationPeerKey.create({
      data: { keyId: key.keyId, connectionId, publicKey: key.publicKey, notAfter: notAfterOf(key) },
    });
  }
}

/** A new connection with the peer's keys. */
export async function createConnection(
  prisma: PrismaClient,
  id: string,
  peer: PublicIdentity,
  fields: ConnectionFields,
): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.federationConnection.create({
      data: { id, peerInstanceId: peer.instanceId, peerName: peer.name, peerUrl: peer.baseUrl, ...fields },
    });
    await addKeys(tx, id, peer.keys);
  });
}

/**
 * A known peer asks again (its request was signed with a key this connection holds) or this instance
 * asks it again (`withNewKeys`: the operator fetched an identity that continues a key it holds): its
 * name, URL and the connection's fields change; new keys are added only in the second case.
 */
export async function renewConnection(
  prisma: PrismaClient,
  id: string,
  peer: PublicIdentity,
  fields: ConnectionFields,
  withNewKeys: boolean,
): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.federationConnection.update({
      where: { id },
      data: { peerName: peer.name, peerUrl: peer.baseUrl, ...fields },
    });
    if (withNewKeys) await addKeys(tx, id, peer.keys);
  });
}

/**
 * keys.rotate, signed with `signingKeyId`: the peer's new keys are added, and the signing key's own
 * validity may shrink to what the message says (to now when it is no longer listed). No other key's
 * validity changes, and none grows back.
 */
export async function applyRotation(
  prisma: PrismaClient,
  id: string,
  peer: PublicIdentity,
  signingKeyId: string,
): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.federationConnection.update({ where: { id }, data: { peerName: peer.name, peerUrl: peer.baseUrl } });
    await addKeys(tx, id, peer.keys);
    // Listed with a notAfter: valid until then. No longer listed: its holder retired it now.
    const listed = peer.keys.find((key) => key.keyId === signingKeyId);
    const requested = listed ? notAfterOf(listed) : new Date();
    if (!requested) return;
    const signing = await tx.federationPeerKey.findUniqueOrThrow({ where: { keyId: signingKeyId } });
    if (signing.connectionId === id && (signing.notAfter === null || signing.notAfter > requested)) {
      await tx.federationPeerKey.update({ where: { keyId: signingKeyId }, data: { notAfter: requested } });
    }
  });
}
