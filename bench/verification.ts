import { generateKeyPairSync, verify } from 'node:crypto';
import {
  checkTimeWindow,
  CommandEnvelopeSchema,
  commandBody,
  JSON_CONTENT_TYPE,
  newNonce,
  signRequest,
} from '../federation/messages';
import {
  checkContentDigest,
  keyIdFor,
  parseSignatureHeaders,
  rawPublicKey,
  REQUEST_COMPONENTS,
  requestComponents,
  signatureBase,
  verifyBase,
} from '../federation/signatures';

/**
 * Signed-command verifications per second (issue 12, item 1), against its baseline measured in the
 * same run: a bare node:crypto Ed25519 verify of the same signature base. Ours is everything an
 * incoming command goes through before any database lookup: strict header parsing (RFC 8941),
 * content digest, time window, signature base, Ed25519 verify and the envelope's schema.
 * Target: ours ≥ 0.7 × bare.
 */
export interface VerificationFigures {
  bareVerifiesPerSecond: number;
  commandVerificationsPerSecond: number;
  ratio: number;
  target: number;
}

function perSecond(seconds: number, operation: () => void): number {
  // Warm up, then count whole batches until the time is up.
  for (let i = 0; i < 200; i++) operation();
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  let count = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) operation();
    count += 100;
  }
  return count / ((performance.now() - started) / 1000);
}

export function measureVerification(seconds: number): VerificationFigures {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdFor(rawPublicKey(publicKey));
  const url = 'https://spoke.example.com/api/v1/federation/incoming/command';
  const nonce = newNonce();
  const envelope = {
    messageId: '6f1c1c52-38c4-4a47-9a3c-1d2b9c1e0a11',
    instanceId: '0b1f6a0e-7d44-4f0a-a0a3-3f9d1a5a2c77',
    commandType: 'agent.status' as const,
    payload: { agentId: 'agent-6f1c1c52-38c4-4a47-9a3c-1d2b9c1e0a11' },
    timestamp: new Date().toISOString(),
    nonce,
  };
  const body = commandBody(envelope);
  const signed = signRequest(
    url,
    body,
    { keyId, publicKey: rawPublicKey(publicKey), privateKey, createdAt: new Date().toISOString(), retiresAt: null },
    Date.now(),
    nonce,
  );
  const headers: Record<string, string> = { ...signed.headers };

  const parsedOnce = parseSignatureHeaders(headers, REQUEST_COMPONENTS);
  const base = Buffer.from(
    signatureBase(
      requestComponents(
        'POST',
        'spoke.example.com',
        '/api/v1/federation/incoming/command',
        JSON_CONTENT_TYPE,
        headers['content-digest'] ?? '',
      ),
      parsedOnce.serializedParams,
    ),
  );
  const bare = perSecond(seconds, () => {
    if (!verify(null, base, publicKey, parsedOnce.signature)) throw new Error('the bare verify failed');
  });
  const ours = perSecond(seconds, () => {
    const parsed = parseSignatureHeaders(headers, REQUEST_COMPONENTS);
    checkContentDigest(headers, body);
    checkTimeWindow(parsed);
    const components = requestComponents(
      'POST',
      'spoke.example.com',
      '/api/v1/federation/incoming/command',
      headers['content-type'] ?? '',
      headers['content-digest'] ?? '',
    );
    if (!verifyBase(components, parsed, publicKey)) throw new Error('the command did not verify');
    CommandEnvelopeSchema.parse(JSON.parse(body.toString('utf8')));
  });
  return {
    bareVerifiesPerSecond: Math.round(bare),
    commandVerificationsPerSecond: Math.round(ours),
    ratio: Number((ours / bare).toFixed(3)),
    target: 0.7,
  };
}
