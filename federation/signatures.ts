import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import {
  parseDictionary,
  serializeDictionary,
  serializeInnerList,
  type Dictionary,
  type InnerList,
  type Item,
  type Parameters,
} from 'structured-headers';

/**
 * The federation's profile of HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530):
 * Ed25519 only, one signature labelled `sig1`, a fixed list of covered components, and `created`,
 * `expires`, `nonce`, `keyid` required. Header parsing is RFC 8941 structured fields
 * (the `structured-headers` library); everything that is not exactly this profile is refused.
 * docs/federation-protocol.md describes the wire format and has test vectors checked by the tests.
 */
export const SIGNATURE_LABEL = 'sig1';
export const REQUEST_COMPONENTS = ['@method', '@authority', '@path', 'content-type', 'content-digest'] as const;
export const RESPONSE_COMPONENTS = ['@status', 'content-type', 'content-digest'] as const;
const ALLOWED_PARAMS = new Set(['created', 'expires', 'nonce', 'keyid', 'alg']);

/** A standalone ArrayBuffer holding exactly these bytes (Node buffers may share a larger pool). */
function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return copy;
}

export class SignatureError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SignatureParams {
  created: number;
  expires: number;
  nonce: string;
  keyid: string;
}

export interface ParsedSignature {
  components: string[];
  params: SignatureParams;
  /** The Signature-Input member re-serialized canonically: the `@signature-params` line. */
  serializedParams: string;
  signature: Buffer;
}

/** `sha-256=:<base64>:` of the exact body bytes. */
export function contentDigest(body: Buffer): string {
  return serializeDictionary(
    new Map([['sha-256', [toArrayBuffer(createHash('sha256').update(body).digest()), new Map()]]]),
  );
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string {
  const value = headers[name];
  if (value === undefined) throw new SignatureError('missing_header', `the ${name} header is required`);
  if (Array.isArray(value)) throw new SignatureError('malformed_header', `the ${name} header must appear once`);
  return value;
}

function parseDict(raw: string, name: string): Dictionary {
  try {
    return parseDictionary(raw);
  } catch {
    throw new SignatureError('malformed_header', `the ${name} header is not a valid structured field dictionary`);
  }
}

/** Strictly parses Signature-Input and Signature for the one `sig1` signature of this profile. */
export function parseSignatureHeaders(
  headers: Record<string, string | string[] | undefined>,
  expectedComponents: readonly string[],
): ParsedSignature {
  const input = parseDict(headerValue(headers, 'signature-input'), 'signature-input');
  const signatures = parseDict(headerValue(headers, 'signature'), 'signature');
  if (input.size !== 1 || signatures.size !== 1 || !input.has(SIGNATURE_LABEL) || !signatures.has(SIGNATURE_LABEL)) {
    throw new SignatureError('malformed_header', `exactly one signature labelled ${SIGNATURE_LABEL} is required`);
  }
  const [list, rawParams] = input.get(SIGNATURE_LABEL) as [unknown, Parameters];
  if (!Array.isArray(list))
    throw new SignatureError('malformed_header', 'signature-input must be an inner list of components');
  const components = (list as InnerList[0]).map(([item, itemParams]) => {
    if (typeof item !== 'string' || itemParams.size > 0)
      throw new SignatureError('malformed_header', 'covered components must be plain strings');
    return item;
  });
  if (
    components.length !== expectedComponents.length ||
    components.some((component, index) => component !== expectedComponents[index])
  ) {
    throw new SignatureError('wrong_components', `the signature must cover exactly ${expectedComponents.join(' ')}`);
  }
  for (const key of rawParams.keys()) {
    if (!ALLOWED_PARAMS.has(key)) throw new SignatureError('malformed_header', `unknown signature parameter ${key}`);
  }
  const created = rawParams.get('created');
  const expires = rawParams.get('expires');
  const nonce = rawParams.get('nonce');
  const keyid = rawParams.get('keyid');
  const alg = rawParams.get('alg');
  if (!Number.isInteger(created) || !Number.isInteger(expires))
    throw new SignatureError('missing_parameter', 'created and expires are required integers');
  if (typeof nonce !== 'string' || !/^[A-Za-z0-9_-]{16,128}$/.test(nonce))
    throw new SignatureError('missing_parameter', 'nonce is required: 16-128 base64url characters');
  if (typeof keyid !== 'string' || keyid.length === 0 || keyid.length > 128)
    throw new SignatureError('missing_parameter', 'keyid is required');
  if (alg !== undefined && alg !== 'ed25519')
    throw new SignatureError('unsupported_algorithm', 'only ed25519 is accepted');

  const [signatureValue, signatureParams] = signatures.get(SIGNATURE_LABEL) as [unknown, Parameters];
  if (!(signatureValue instanceof ArrayBuffer) || signatureValue.byteLength !== 64 || signatureParams.size > 0) {
    throw new SignatureError('malformed_header', 'the signature must be a 64-byte byte sequence');
  }
  return {
    components,
    params: { created: created as number, expires: expires as number, nonce, keyid },
    serializedParams: serializeInnerList([list as InnerList[0], rawParams]),
    signature: Buffer.from(signatureValue),
  };
}

/** The values of REQUEST_COMPONENTS, in order: the signer and the verifier build them here, alike. */
export function requestComponents(
  method: string,
  authority: string,
  path: string,
  contentType: string,
  digest: string,
): Array<[string, string]> {
  return [
    ['@method', method.toUpperCase()],
    ['@authority', authority.toLowerCase()],
    ['@path', path],
    ['content-type', contentType],
    ['content-digest', digest],
  ];
}

/** The values of RESPONSE_COMPONENTS, in order. */
export function responseComponents(status: number, contentType: string, digest: string): Array<[string, string]> {
  return [
    ['@status', String(status)],
    ['content-type', contentType],
    ['content-digest', digest],
  ];
}

/** RFC 9421 §2.5: one line per covered component, then the signature parameters. */
export function signatureBase(componentValues: Array<[string, string]>, serializedParams: string): string {
  return [
    ...componentValues.map(([name, value]) => `"${name}": ${value}`),
    `"@signature-params": ${serializedParams}`,
  ].join('\n');
}

export function serializeParams(components: readonly string[], params: SignatureParams): string {
  const items: InnerList[0] = components.map((component): Item => [component, new Map<string, never>()]);
  return serializeInnerList([
    items,
    new Map<string, string | number>([
      ['created', params.created],
      ['expires', params.expires],
      ['nonce', params.nonce],
      ['keyid', params.keyid],
    ]),
  ]);
}

/** Signs and returns the Signature-Input and Signature header values. */
export function signBase(
  componentValues: Array<[string, string]>,
  params: SignatureParams,
  privateKey: KeyObject,
): { 'signature-input': string; signature: string } {
  const serializedParams = serializeParams(
    componentValues.map(([name]) => name),
    params,
  );
  const signature = sign(null, Buffer.from(signatureBase(componentValues, serializedParams), 'utf8'), privateKey);
  return {
    'signature-input': `${SIGNATURE_LABEL}=${serializedParams}`,
    signature: serializeDictionary(new Map([[SIGNATURE_LABEL, [toArrayBuffer(signature), new Map()]]])),
  };
}

export function verifyBase(
  componentValues: Array<[string, string]>,
  parsed: ParsedSignature,
  publicKey: KeyObject,
): boolean {
  return verify(
    null,
    Buffer.from(signatureBase(componentValues, parsed.serializedParams), 'utf8'),
    publicKey,
    parsed.signature,
  );
}

/** Checks Content-Digest against the raw body bytes (sha-256 only). */
export function checkContentDigest(headers: Record<string, string | string[] | undefined>, body: Buffer): void {
  const digests = parseDict(headerValue(headers, 'content-digest'), 'content-digest');
  const entry = digests.get('sha-256');
  if (digests.size !== 1 || !entry || !(entry[0] instanceof ArrayBuffer))
    throw new SignatureError('malformed_header', 'content-digest must hold exactly one sha-256 value');
  const expected = createHash('sha256').update(body).digest();
  if (!expected.equals(Buffer.from(entry[0])))
    throw new SignatureError('digest_mismatch', 'content-digest does not match the body');
}

/** Ed25519 public keys travel as base64url of their 32 raw bytes. */
export function publicKeyFromRaw(raw: string): KeyObject {
  if (!/^[A-Za-z0-9_-]{43}$/.test(raw))
    throw new SignatureError('malformed_key', 'an Ed25519 public key is 32 bytes in base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
}

export function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new SignatureError('malformed_key', 'not an Ed25519 key');
  return jwk.x;
}

/** A key id derived from the key itself: base64url of the first 16 bytes of SHA-256 of the raw key. */
export function keyIdFor(rawKey: string): string {
  return createHash('sha256').update(Buffer.from(rawKey, 'base64url')).digest().subarray(0, 16).toString('base64url');
}
