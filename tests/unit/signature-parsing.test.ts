import { generateKeyPairSync } from 'node:crypto';
import { signRequest } from '../../federation/messages';
import {
  keyIdFor,
  parseSignatureHeaders,
  rawPublicKey,
  REQUEST_COMPONENTS,
  SignatureError,
} from '../../federation/signatures';

/** The strict header parser refuses everything that is not exactly the profile; each case has a passing twin. */
describe('parseSignatureHeaders', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = {
    keyId: keyIdFor(rawPublicKey(publicKey)),
    publicKey: rawPublicKey(publicKey),
    privateKey,
    createdAt: '',
    retiresAt: null,
  };
  const valid = (): Record<string, string> =>
    signRequest('http://spoke.test:3000/api/v1/federation/incoming/command', Buffer.from('{}'), key).headers;

  it('accepts a request signed by this implementation', () => {
    const parsed = parseSignatureHeaders(valid(), REQUEST_COMPONENTS);
    expect(parsed.params.keyid).toBe(key.keyId);
    expect(parsed.signature).toHaveLength(64);
  });

  const mutate = (name: string, change: (value: string) => string): Record<string, string> => {
    const headers = valid();
    headers[name] = change(headers[name] ?? '');
    return headers;
  };

  it.each([
    [
      'a second signature',
      mutate('signature-input', (v) => `${v}, sig2=("@method");created=1;expires=2;nonce="aaaaaaaaaaaaaaaa";keyid="k"`),
      'malformed_header',
    ],
    ['another label', mutate('signature-input', (v) => v.replace('sig1=', 'sig9=')), 'malformed_header'],
    ['a missing component', mutate('signature-input', (v) => v.replace(' "content-digest"', '')), 'wrong_components'],
    [
      'reordered components',
      mutate('signature-input', (v) => v.replace('"@method" "@authority"', '"@authority" "@method"')),
      'wrong_components',
    ],
    ['an unknown parameter', mutate('signature-input', (v) => `${v};tag="x"`), 'malformed_header'],
    ['another algorithm', mutate('signature-input', (v) => `${v};alg="rsa-pss-sha512"`), 'unsupported_algorithm'],
    ['no nonce', mutate('signature-input', (v) => v.replace(/;nonce="[^"]+"/, '')), 'missing_parameter'],
    ['no created', mutate('signature-input', (v) => v.replace(/;created=\d+/, '')), 'missing_parameter'],
    ['no keyid', mutate('signature-input', (v) => v.replace(/;keyid="[^"]+"/, '')), 'missing_parameter'],
    ['a short signature', mutate('signature', () => 'sig1=:AAAA:'), 'malformed_header'],
    ['garbage', mutate('signature', () => 'sig1=:not base64'), 'malformed_header'],
  ])('refuses %s', (_name, headers, code) => {
    expect(() => parseSignatureHeaders(headers, REQUEST_COMPONENTS)).toThrow(
      expect.objectContaining({ code }) as SignatureError,
    );
  });
});
