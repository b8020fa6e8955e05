import { createPublicKey } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { signingKey, type InstanceIdentity } from '../../federation/identity';

/**
 * The token each callback carries (Authorization: Bearer): a JWT signed with this instance's Ed25519
 * key (jose), issued by its PUBLIC_URL, whose subject is the one session it is about, whose audience
 * is the receiver's, and which expires minutes after it was made; jti is the event's id. A receiver
 * checks it with the instance's JWKS (GET /.well-known/jwks.json): see client/callback-receiver.ts.
 */
export const CALLBACK_TOKEN_LIFETIME_SECONDS = 300;

export interface CallbackClaims {
  sessionId: string;
  audience: string;
  eventId: string;
  sequence: number;
}

export async function signCallbackToken(
  identity: InstanceIdentity,
  claims: CallbackClaims,
  now = new Date(),
): Promise<string> {
  const key = signingKey(identity);
  const issuedAt = Math.floor(now.getTime() / 1000);
  return await new SignJWT({ seq: claims.sequence })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.keyId, typ: 'JWT' })
    .setIssuer(identity.baseUrl)
    .setSubject(claims.sessionId)
    .setAudience(claims.audience)
    .setJti(claims.eventId)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + CALLBACK_TOKEN_LIFETIME_SECONDS)
    .sign(key.privateKey);
}

/** The instance's public keys as a JWK Set: the active key and any still retiring. */
export async function callbackJwks(identity: InstanceIdentity): Promise<{ keys: JWK[] }> {
  const keys = await Promise.all(
    identity.keys.map(async (key) => ({
      ...(await exportJWK(createPublicKey(key.privateKey))),
      kid: key.keyId,
      alg: 'EdDSA',
      use: 'sig',
    })),
  );
  return { keys };
}

/** The audience a receiver gets when the spawn names none: its callback URL's origin. */
export const defaultAudience = (callbackUrl: string): string => new URL(callbackUrl).origin;
