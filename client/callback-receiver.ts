import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';

/**
 * The receiving side of the orchestrator's session callbacks: checks the Bearer token of a callback
 * before its event is trusted. A token passes only when it is signed by the orchestrator's key (its
 * JWKS), issued by that orchestrator, meant for this receiver's audience, unexpired, about the session
 * the event names, and for that very event.
 *
 *   const verify = callbackVerifier({ orchestratorUrl: 'https://orchestrator.example.com', audience:
 * 'https://gateway.example.com' });
 *   const claims = await verify(request.headers.authorization, body.sessionId, body.eventId);
 */
export type CallbackRefusal =
  | 'missing_token'
  | 'expired'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'wrong_session'
  | 'wrong_event'
  | 'bad_signature'
  | 'malformed'
  /** The orchestrator's keys could not be fetched (it is restarting, say): not a refusal, answer 503. */
  | 'keys_unavailable';

export class CallbackTokenError extends Error {
  constructor(
    readonly reason: CallbackRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'CallbackTokenError';
  }
}

export interface CallbackVerifierOptions {
  /** The orchestrator's PUBLIC_URL: its tokens' issuer, and where its JWKS is served. */
  orchestratorUrl: string;
  /** This receiver's audience: what the spawn named as callback_audience (default: the callback URL's origin). */
  audience: string;
  /** Allowed clock difference, seconds (default 30). */
  clockToleranceSeconds?: number;
}

export interface CallbackClaims extends JWTPayload {
  sub: string;
  jti: string;
  seq: number;
}

export function callbackVerifier(
  options: CallbackVerifierOptions,
): (authorization: string | undefined, sessionId: string, eventId: string) => Promise<CallbackClaims> {
  const issuer = options.orchestratorUrl.replace(/\/$/, '');
  const keys = createRemoteJWKSet(new URL('/.well-known/jwks.json', `${issuer}/`));
  return async (authorization, sessionId, eventId) => {
    const token = /^Bearer ([A-Za-z0-9._-]+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw new CallbackTokenError('missing_token', 'the callback carries no Bearer token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer,
        audience: options.audience,
        algorithms: ['EdDSA'],
        clockTolerance: options.clockToleranceSeconds ?? 30,
      }));
    } catch (error) {
      throw refusalOf(error);
    }
    if (payload.sub !== sessionId)
      throw new CallbackTokenError('wrong_session', `the token is for another session, not ${sessionId}`);
    if (payload.jti !== eventId)
      throw new CallbackTokenError('wrong_event', `the token is for another event, not ${eventId}`);
    if (typeof payload.seq !== 'number') throw new CallbackTokenError('malformed', 'the token has no sequence number');
    return payload as CallbackClaims;
  };
}

function refusalOf(error: unknown): CallbackTokenError {
  if (error instanceof errors.JWTExpired) return new CallbackTokenError('expired', 'the token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud')
      return new CallbackTokenError('wrong_audience', 'the token is meant for another receiver');
    if (error.claim === 'iss')
      return new CallbackTokenError('wrong_issuer', 'the token was issued by another orchestrator');
    return new CallbackTokenError('malformed', `the token's ${error.claim} claim is not acceptable`);
  }
  // A key set that could not be fetched says nothing about the token: the sender should try again.
  if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError))
    return new CallbackTokenError('keys_unavailable', "the orchestrator's keys could not be fetched: try again");
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey)
    return new CallbackTokenError('bad_signature', 'the token is not signed by the orchestrator');
  return new CallbackTokenError(
    'malformed',
    `the token cannot be read: ${error instanceof Error ? error.message : String(error)}`,
  );
}
