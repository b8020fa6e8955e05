import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { signRequest } from '../../federation/messages';
import {
  keyIdFor,
  parseSignatureHeaders,
  publicKeyFromRaw,
  rawPublicKey,
  REQUEST_COMPONENTS,
  verifyBase,
} from '../../federation/signatures';

interface Vectors {
  seedHex: string;
  publicKey: string;
  keyId: string;
  url: string;
  now: string;
  body: string;
  headers: Record<string, string>;
  signatureBase: string;
}

/** The vectors in docs/federation-protocol.md are what this implementation produces and accepts. */
const doc = readFileSync(path.resolve(__dirname, '../../docs/federation-protocol.md'), 'utf8');
const block = /<!-- vectors:start -->\s*```json\n([\s\S]*?)```\s*<!-- vectors:end -->/.exec(doc)?.[1];
const vectors = JSON.parse(block ?? '{}') as Vectors;

describe('federation protocol test vectors', () => {
  const privateKey = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(vectors.seedHex, 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });

  it('derive the documented public key and key id from the seed', () => {
    expect(rawPublicKey(createPublicKey(privateKey))).toBe(vectors.publicKey);
    expect(keyIdFor(vectors.publicKey)).toBe(vectors.keyId);
  });

  it('sign to exactly the documented headers', () => {
    const key = { keyId: vectors.keyId, publicKey: vectors.publicKey, privateKey, createdAt: '', retiresAt: null };
    const signed = signRequest(
      vectors.url,
      Buffer.from(vectors.body),
      key,
      Date.parse(vectors.now),
      'vectorNonce000000001',
    );
    expect(signed.headers).toEqual(vectors.headers);
  });

  it('verify over the documented signature base, and not over a changed one', () => {
    const parsed = parseSignatureHeaders(vectors.headers, REQUEST_COMPONENTS);
    const url = new URL(vectors.url);
    const components: Array<[string, string]> = [
      ['@method', 'POST'],
      ['@authority', url.host],
      ['@path', url.pathname],
      ['content-type', vectors.headers['content-type']!],
      ['content-digest', vectors.headers['content-digest']!],
    ];
    const base = [
      ...components.map(([name, value]) => `"${name}": ${value}`),
      `"@signature-params": ${parsed.serializedParams}`,
    ].join('\n');
    expect(base).toBe(vectors.signatureBase);
    const publicKey = publicKeyFromRaw(vectors.publicKey);
    expect(verifyBase(components, parsed, publicKey)).toBe(true);
    expect(verifyBase([['@method', 'PUT'], ...components.slice(1)], parsed, publicKey)).toBe(false);
  });
});
