import { generateKeyPair, SignJWT } from 'jose';
import { callbackVerifier } from '../../client/callback-receiver';

/** A receiver that cannot fetch the orchestrator's keys must ask for the callback again, not refuse it. */
describe('the callback receiver check', () => {
  it('says keys_unavailable (answer 503) when the orchestrator cannot be reached, not a refused token', async () => {
    const { privateKey } = await generateKeyPair('EdDSA');
    const issuer = 'http://127.0.0.1:9';
    const token = await new SignJWT({ seq: 1 })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k' })
      .setIssuer(issuer)
      .setAudience('receiver')
      .setSubject('session')
      .setJti('event')
      .setExpirationTime('1m')
      .sign(privateKey);
    const verify = callbackVerifier({ orchestratorUrl: issuer, audience: 'receiver' });
    await expect(verify(`Bearer ${token}`, 'session', 'event')).rejects.toMatchObject({ reason: 'keys_unavailable' });
    await expect(verify('Bearer not-a-token', 'session', 'event')).rejects.toMatchObject({ reason: 'malformed' });
  });
});
