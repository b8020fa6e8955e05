import { randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createSigner, createVerifier, httpbis } from 'http-message-signatures';
import { HANDSHAKE_PATH, INCOMING_COMMAND_PATH } from '../../federation/client';
import {
  createIdentityHolder,
  publicIdentity,
  signingKey,
  type InstanceIdentity,
  type InstanceKey,
  type PublicIdentity,
} from '../../federation/identity';
import { contentDigest, keyIdFor, publicKeyFromRaw } from '../../federation/signatures';
import { signRequest, type CommandEnvelope } from '../../federation/messages';
import { issueApiToken } from '../../api/auth';
import { bearer, linkInstances, type Link } from '../helpers/federation';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { sample } from '../helpers/metrics';

/**
 * The federation's trust boundary, attacked as a hostile peer would: every attack has a valid twin
 * that passes first, and the attack must change nothing (no connection, key, row or agent).
 */
const RATE_LIMIT = 20;

/**
 * A server on loopback that plays whatever a test needs (a peer's identity, a redirect, garbage) and counts requests.
 */
class FakePeer {
  hits: string[] = [];
  private readonly server: http.Server;
  constructor(private answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
    this.server = http.createServer((req, res) => {
      this.hits.push(req.url ?? '');
      this.answer(req, res);
    });
  }
  set(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
    this.answer = answer;
  }
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const serveIdentity = (identity: PublicIdentity) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(identity));
};

async function stranger(name: string): Promise<InstanceIdentity> {
  return createIdentityHolder({
    dataDir: await mkdtemp(path.join(os.tmpdir(), `${name}-`)),
    name,
    baseUrl: 'http://127.0.0.1:9',
  }).current();
}

describe('the federation trust boundary', () => {
  let hub: TestInstance;
  let spoke: TestInstance;
  let strict: TestInstance;
  let link: Link;
  const fakes: FakePeer[] = [];

  beforeAll(async () => {
    hub = await startTestInstance();
    spoke = await startTestInstance({ FEDERATION_RATE_LIMIT: String(RATE_LIMIT), FEDERATION_PEER_TIMEOUT: '3' });
    // An instance with the default outbound policy: public addresses only, and a short peer timeout.
    strict = await startTestInstance(
      { OUTBOUND_ALLOWED_NETWORKS: '', FEDERATION_PEER_TIMEOUT: '2' },
      { worker: false },
    );
    link = await linkInstances(hub, spoke);
  });
  afterAll(async () => {
    for (const fake of fakes) await fake.stop();
    await hub.stop();
    await spoke.stop();
    await strict.stop();
  });

  /** A stranger whose identity (with its own URL) is published by a fake peer, as a real instance would publish it. */
  async function publishedStranger(
    name: string,
  ): Promise<{ identity: InstanceIdentity; published: PublicIdentity; fake: FakePeer }> {
    const identity = await stranger(name);
    const { fake, url } = await fakePeer();
    const published = { ...publicIdentity(identity), baseUrl: url };
    fake.set(serveIdentity(published));
    return { identity, published, fake };
  }

  async function fakePeer(
    answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.writeHead(404).end(),
  ): Promise<{ fake: FakePeer; url: string }> {
    const fake = new FakePeer(answer);
    fakes.push(fake);
    return { fake, url: await fake.start() };
  }

  /** A signed handshake message as a peer would send it to `target`. */
  function handshake(
    target: TestInstance,
    type: string,
    instance: PublicIdentity,
    key: InstanceKey | { keyId: string; privateKey: KeyObject },
  ) {
    const nonce = randomUUID().replace(/-/g, '');
    const body = Buffer.from(JSON.stringify({ type, instance, timestamp: new Date().toISOString(), nonce }));
    const url = `${target.baseUrl}${HANDSHAKE_PATH}`;
    const signed = signRequest(url, body, key as InstanceKey, Date.now(), nonce);
    return {
      send: () =>
        request(target.baseUrl, 'POST', HANDSHAKE_PATH, { rawBody: body.toString('utf8'), headers: signed.headers }),
    };
  }

  /** A COMMAND from the hub to the spoke, signed with `key` (the hub's by default). */
  function command(key: InstanceKey = signingKey(hub.identity.current()), envelope: Partial<CommandEnvelope> = {}) {
    const nonce = randomUUID().replace(/-/g, '');
    const body = Buffer.from(
      JSON.stringify({
        messageId: randomUUID(),
        instanceId: hub.identity.current().instanceId,
        commandType: 'agent.status',
        payload: { agentId: `agent-${randomUUID()}` },
        timestamp: new Date().toISOString(),
        nonce,
        ...envelope,
      }),
    );
    const signed = signRequest(`${spoke.baseUrl}${INCOMING_COMMAND_PATH}`, body, key, Date.now(), nonce);
    return {
      body,
      headers: signed.headers,
      send: () =>
        request(spoke.baseUrl, 'POST', INCOMING_COMMAND_PATH, {
          rawBody: body.toString('utf8'),
          headers: signed.headers,
        }),
    };
  }

  /** Everything on the spoke an attack could change. */
  async function spokeState() {
    return {
      connections: await spoke.prisma.federationConnection.findMany({
        orderBy: { id: 'asc' },
        select: { id: true, peerInstanceId: true, peerUrl: true, status: true, workspaceId: true },
      }),
      keys: await spoke.prisma.federationPeerKey.findMany({
        orderBy: { keyId: 'asc' },
        select: { keyId: true, connectionId: true, publicKey: true, notAfter: true },
      }),
      agents: await spoke.prisma.agent.count(),
    };
  }

  /** How many refusals of this kind and reason the spoke's API counted (GET /metrics). */
  const rejections = async (kind: string, reason: string): Promise<number> =>
    sample(await (await fetch(`${spoke.baseUrl}/metrics`)).text(), 'orchestrator_federation_rejections_total', {
      kind,
      reason,
    });

  async function expectRefusedAndNothingChanged(
    send: () => Promise<JsonResponse>,
    status: number,
    code: string,
  ): Promise<void> {
    const before = await spokeState();
    const response = await send();
    expect([response.status, errorCode(response)]).toEqual([status, code]);
    expect(await spokeState()).toEqual(before);
  }

  // ---- 1. keys and connections ----

  it(
    'binds a new instance to its keys, and refuses keys named after other ' + 'keys or held by another connection',
    async () => {
      const { identity: newcomer, published } = await publishedStranger('newcomer');
      // Valid twin: a newcomer whose key ids are derived from its keys is recorded PENDING.
      const accepted = await handshake(spoke, 'connection.request', published, signingKey(newcomer)).send();
      expect(accepted.status).toBe(202);
      expect(
        await spoke.prisma.federationConnection.count({
          where: { peerInstanceId: newcomer.instanceId, status: 'PENDING' },
        }),
      ).toBe(1);

      // A key named after the hub's key id: refused as malformed, before anything is stored.
      const impostor = await stranger('impostor');
      const hubKeyId = signingKey(hub.identity.current()).keyId;
      const misnamed = {
        ...publicIdentity(impostor),
        keys: publicIdentity(impostor).keys.map((key) => ({ ...key, keyId: hubKeyId })),
      };
      await expectRefusedAndNothingChanged(
        handshake(spoke, 'connection.request', misnamed, { ...signingKey(impostor), keyId: hubKeyId }).send,
        400,
        'invalid_handshake',
      );

      // The hub's real key (public, correctly named) listed by another instance, to expire it: the key id belongs to
      // the
      // hub's connection.
      const { identity: thief, published: thiefIdentity, fake } = await publishedStranger('thief');
      const hubKey = publicIdentity(hub.identity.current()).keys[0]!;
      const withStolenKey: PublicIdentity = {
        ...thiefIdentity,
        keys: [
          ...thiefIdentity.keys,
          { ...hubKey, status: 'retiring', notAfter: new Date(Date.now() - 1000).toISOString() },
        ],
      };
      fake.set(serveIdentity(withStolenKey));
      await expectRefusedAndNothingChanged(
        handshake(spoke, 'connection.request', withStolenKey, signingKey(thief)).send,
        409,
        'key_in_use',
      );
      expect((await command().send()).status).toBe(200); // the hub is not locked out
    },
  );

  it(
    'refuses a connection.request for a known instance id unless a key it ' + 'holds signed it, and fetches nothing',
    async () => {
      for (const victim of ['the ACTIVE hub', 'a PENDING peer']) {
        let target = hub.identity.current();
        if (victim === 'a PENDING peer') {
          const pending = await publishedStranger('pending-peer');
          target = pending.identity;
          expect(
            (await handshake(spoke, 'connection.request', pending.published, signingKey(target)).send()).status,
          ).toBe(202);
          // Valid twin: the same peer asking again, signed with the key it introduced.
          expect(
            (await handshake(spoke, 'connection.request', pending.published, signingKey(target)).send()).status,
          ).toBe(202);
        }
        // The attacker claims the instance id with its own key, and publishes that claim at its own URL.
        const attacker = await stranger('hijacker');
        const { fake, url } = await fakePeer();
        const claim: PublicIdentity = { ...publicIdentity(attacker), instanceId: target.instanceId, baseUrl: url };
        fake.set(serveIdentity(claim));
        await expectRefusedAndNothingChanged(
          handshake(spoke, 'connection.request', claim, signingKey(attacker)).send,
          409,
          'instance_bound',
        );
        expect([victim, fake.hits]).toEqual([victim, []]); // refused before any fetch
      }
    },
  );

  it(
    'lets only a key’s own holder shorten its validity: no extension, no ' + 'revival, no change to another key',
    async () => {
      const before = signingKey(hub.identity.current());
      const rotated = await request(hub.baseUrl, 'POST', '/api/v1/federation/keys/rotate', {
        headers: bearer(link.hubAdminToken),
        json: { overlapSeconds: 3600 },
      });
      expect(rotated.status).toBe(200);
      const current = signingKey(hub.identity.current());
      const stored = async () =>
        Object.fromEntries(
          (await spoke.prisma.federationPeerKey.findMany({ where: { connectionId: link.spokeConnectionId } })).map(
            (key) => [key.keyId, key.notAfter?.toISOString() ?? null],
          ),
        );
      const beforeAttack = await stored();
      expect(beforeAttack[before.keyId]).not.toBeNull(); // retiring within the overlap
      expect(beforeAttack[current.keyId]).toBeNull();

      const identity = publicIdentity(hub.identity.current());
      const listing = (changes: Record<string, string | null>): PublicIdentity => ({
        ...identity,
        keys: identity.keys.map((key) =>
          key.keyId in changes ? { ...key, notAfter: changes[key.keyId] ?? null } : key,
        ),
      });
      // Signed with the retiring key: extend itself, and expire the current key.
      const extendAndExpire = listing({
        [before.keyId]: null,
        [current.keyId]: new Date(Date.now() - 1000).toISOString(),
      });
      expect((await handshake(spoke, 'keys.rotate', extendAndExpire, before).send()).status).toBe(202);
      expect(await stored()).toEqual(beforeAttack);

      // Valid twin: the current key's holder shortens the current key.
      const soon = new Date(Date.now() + 30 * 60_000).toISOString();
      expect((await handshake(spoke, 'keys.rotate', listing({ [current.keyId]: soon }), current).send()).status).toBe(
        202,
      );
      expect((await stored())[current.keyId]).toBe(soon);

      // Once a key has expired, no message brings it back, and it signs nothing any more.
      await spoke.prisma.federationPeerKey.update({
        where: { keyId: before.keyId },
        data: { notAfter: new Date(Date.now() - 1000) },
      });
      const expired = await stored();
      expect((await handshake(spoke, 'keys.rotate', listing({ [before.keyId]: null }), current).send()).status).toBe(
        202,
      );
      expect(await stored()).toEqual(expired);
      await expectRefusedAndNothingChanged(
        handshake(spoke, 'keys.rotate', listing({}), before).send,
        401,
        'unknown_key',
      );
      expect((await command(current).send()).status).toBe(200);
    },
  );

  it(
    'moves a peer’s URL through keys.rotate only when the new URL publishes ' + 'that instance and its signing key',
    async () => {
      const key = signingKey(hub.identity.current());
      const identity = publicIdentity(hub.identity.current());
      const peerUrl = async () =>
        (await spoke.prisma.federationConnection.findUniqueOrThrow({ where: { id: link.spokeConnectionId } })).peerUrl;
      const original = await peerUrl();

      // The attack: a rotation that points the hub's connection at an address publishing someone else.
      const { fake: impostor, url: impostorUrl } = await fakePeer();
      impostor.set(serveIdentity({ ...publicIdentity(await stranger('impostor')), baseUrl: impostorUrl }));
      await expectRefusedAndNothingChanged(
        handshake(spoke, 'keys.rotate', { ...identity, baseUrl: impostorUrl }, key).send,
        403,
        'identity_mismatch',
      );
      expect(await peerUrl()).toBe(original);

      // The valid twin: the new address publishes the hub's own identity and key, and the URL moves (then moves back).
      const { fake: moved, url: movedUrl } = await fakePeer();
      moved.set(serveIdentity({ ...identity, baseUrl: movedUrl }));
      expect((await handshake(spoke, 'keys.rotate', { ...identity, baseUrl: movedUrl }, key).send()).status).toBe(202);
      expect(await peerUrl()).toBe(movedUrl);
      expect((await handshake(spoke, 'keys.rotate', identity, key).send()).status).toBe(202);
      expect(await peerUrl()).toBe(original);
      expect((await command().send()).status).toBe(200);
    },
  );

  // ---- 2. rate limits and what a caller learns before its signature verifies ----

  it('does not let garbage traffic spend a connection’s rate limit, nor store anything', async () => {
    const forger = signingKey(await stranger('forger'));
    const hubKey = signingKey(hub.identity.current());
    expect((await command().send()).status).toBe(200); // valid twin
    const rows = await spoke.prisma.federationCommand.count();
    const counted = await rejections('command', 'bad_signature');
    for (let i = 0; i < RATE_LIMIT + 5; i++) {
      const forged = await command({ ...forger, keyId: hubKey.keyId }).send();
      expect([forged.status, errorCode(forged)]).toEqual([401, 'bad_signature']);
    }
    // Refusals of callers that proved nothing are counted, never stored.
    expect(await spoke.prisma.federationCommand.count()).toBe(rows);
    expect(await rejections('command', 'bad_signature')).toBe(counted + RATE_LIMIT + 5);
    expect((await command().send()).status).toBe(200);
  });

  it('tells a caller nothing about a connection’s status before its signature verifies', async () => {
    await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${link.spokeConnectionId}/suspend`, {
      headers: bearer(link.spokeToken),
    });
    try {
      const genuine = await command().send(); // valid twin: the key's holder learns the status
      expect([genuine.status, errorCode(genuine)]).toEqual([403, 'connection_suspended']);
      const forger = signingKey(await stranger('prober'));
      const probe = await command({ ...forger, keyId: signingKey(hub.identity.current()).keyId }).send();
      expect([probe.status, errorCode(probe)]).toEqual([401, 'bad_signature']);
      expect(probe.text).not.toMatch(/suspend/i);
    } finally {
      await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${link.spokeConnectionId}/resume`, {
        headers: bearer(link.spokeToken),
      });
    }
    expect((await command().send()).status).toBe(200);
  });

  it('lets a peer lift only its own suspension: one made here stays until this instance resumes it', async () => {
    const spokeSide = () =>
      spoke.prisma.federationConnection.findUniqueOrThrow({ where: { id: link.spokeConnectionId } });
    const act = (target: TestInstance, connectionId: string, token: string, action: string) =>
      request(target.baseUrl, 'POST', `/api/v1/federation/connections/${connectionId}/${action}`, {
        headers: bearer(token),
      });

    // The valid twin: the hub suspends, the spoke records whose suspension it is, and the hub lifts it.
    expect((await act(hub, link.hubConnectionId, link.hubToken, 'suspend')).body).toMatchObject({
      status: 'SUSPENDED',
      suspendedBy: 'local',
      peerNotified: true,
    });
    expect(await spokeSide()).toMatchObject({ status: 'SUSPENDED', suspendedBy: 'peer' });
    // The spoke's side cannot lift the hub's suspension on its own.
    const notMine = await act(spoke, link.spokeConnectionId, link.spokeToken, 'resume');
    expect([notMine.status, errorCode(notMine)]).toEqual([409, 'suspended_by_peer']);
    expect((await act(hub, link.hubConnectionId, link.hubToken, 'resume')).body).toMatchObject({
      status: 'ACTIVE',
      suspendedBy: null,
      peerNotified: true,
    });
    expect(await spokeSide()).toMatchObject({ status: 'ACTIVE', suspendedBy: null });
    expect((await command().send()).status).toBe(200);

    // The attack: the spoke's administrator suspends the hub, and the hub sends its own signed connection.resume.
    await act(spoke, link.spokeConnectionId, link.spokeToken, 'suspend');
    try {
      const before = await spokeState();
      const resumed = await handshake(
        spoke,
        'connection.resume',
        publicIdentity(hub.identity.current()),
        signingKey(hub.identity.current()),
      ).send();
      expect([resumed.status, errorCode(resumed)]).toEqual([409, 'suspended_by_receiver']);
      expect(await spokeState()).toEqual(before);
      expect(await spokeSide()).toMatchObject({ status: 'SUSPENDED', suspendedBy: 'local' });
      const refused = await command().send();
      expect([refused.status, errorCode(refused)]).toEqual([403, 'connection_suspended']);
    } finally {
      await act(spoke, link.spokeConnectionId, link.spokeToken, 'resume');
    }
    expect((await command().send()).status).toBe(200);
  });

  it(
    'refuses instance ids and names that only look like another peer’s: ' +
      'non-ASCII, invisible characters, unnormalised text',
    async () => {
      const { identity, published } = await publishedStranger('lookalike');
      const lookalikes = [
        { ...published, instanceId: `${published.instanceId}\u200b` }, // a zero-width space
        { ...published, instanceId: published.instanceId.replace(/^./, '\u0430') }, // a Cyrillic "a"
        { ...published, name: 'lookalike\u200d' }, // a zero-width joiner
        { ...published, name: 'Cafe\u0301' }, // "Café", not NFC
      ];
      // The valid twin: the identity as published is taken (PENDING); every lookalike of it is refused and changes
      // nothing.
      expect((await handshake(spoke, 'connection.request', published, signingKey(identity)).send()).status).toBe(202);
      for (const forged of lookalikes) {
        await expectRefusedAndNothingChanged(
          handshake(spoke, 'connection.request', forged, signingKey(identity)).send,
          400,
          'invalid_handshake',
        );
      }
    },
  );

  // ---- 3. outbound requests ----

  it(
    'refuses to call loopback and other non-public addresses unless the ' +
      'instance allows them, and says only "peer unreachable"',
    async () => {
      const { fake, published } = await publishedStranger('public-looking');
      const url = published.baseUrl;
      const { token } = await issueApiToken(strict.prisma, `strict-${Date.now()}`);
      const connections = () => strict.prisma.federationConnection.count();
      const before = await connections();
      for (const peerUrl of [
        url,
        url.replace('127.0.0.1', 'localhost'),
        'http://[::1]:9',
        'http://169.254.169.254',
        'http://10.0.0.1',
      ]) {
        const response = await request(strict.baseUrl, 'POST', '/api/v1/federation/connections', {
          headers: bearer(token),
          json: { peerUrl },
        });
        expect([
          peerUrl,
          response.status,
          errorCode(response),
          (response.body as { error: { message: string } }).error.message,
        ]).toEqual([peerUrl, 502, 'peer_unreachable', 'peer unreachable']);
      }
      expect(fake.hits).toEqual([]);
      expect(await connections()).toBe(before);
      // Valid twin: an instance that allows loopback reaches the same peer.
      const allowed = await request(hub.baseUrl, 'POST', '/api/v1/federation/connections', {
        headers: bearer(link.hubToken),
        json: { peerUrl: url },
      });
      expect(fake.hits).toContain('/api/v1/federation/instance');
      expect(allowed.status).toBe(201);
    },
  );

  it(
    'follows no redirect, reads no unbounded body, waits no longer than the ' +
      'timeout, and echoes nothing of the answer',
    async () => {
      const target = await publishedStranger('redirected');
      const { token } = await issueApiToken(spoke.prisma, `out-${Date.now()}`);
      const connect = (peerUrl: string) =>
        request(spoke.baseUrl, 'POST', '/api/v1/federation/connections', { headers: bearer(token), json: { peerUrl } });

      const cases: Array<[string, (req: http.IncomingMessage, res: http.ServerResponse) => void]> = [
        [
          'a redirect to a valid identity',
          (_req, res) =>
            res.writeHead(302, { location: `${target.published.baseUrl}/api/v1/federation/instance` }).end(),
        ],
        [
          'a 9 MB identity',
          (_req, res) =>
            res.writeHead(200, { 'content-type': 'application/json' }).end(`{"pad":"${'x'.repeat(9 * 1024 * 1024)}"}`),
        ],
        [
          'an internal page',
          (_req, res) =>
            res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>INTERNAL-ADMIN-CONSOLE secret=42</h1>'),
        ],
        ['a server that never answers', () => undefined],
      ];
      for (const [name, answer] of cases) {
        const { url } = await fakePeer(answer);
        const started = Date.now();
        const response = await connect(url);
        expect([
          name,
          response.status,
          errorCode(response),
          (response.body as { error: { message: string } }).error.message,
        ]).toEqual([name, 502, 'peer_unreachable', 'peer unreachable']);
        expect(response.text).not.toMatch(/INTERNAL|secret|302|html/);
        expect(Date.now() - started).toBeLessThan(45_000);
      }
      expect(target.fake.hits).toEqual([]); // the redirect was not followed
    },
    120_000,
  );

  it(
    'refuses a replayed connection.request before fetching anything, and ' + 'limits the fetches one address can cause',
    async () => {
      const { identity: peer, published } = await publishedStranger('replayer');
      const url = published.baseUrl;
      const nonce = randomUUID().replace(/-/g, '');
      const body = Buffer.from(
        JSON.stringify({
          type: 'connection.request',
          instance: { ...publicIdentity(peer), baseUrl: url },
          timestamp: new Date().toISOString(),
          nonce,
        }),
      );
      const headers = signRequest(
        `${strict.baseUrl}${HANDSHAKE_PATH}`,
        body,
        signingKey(peer),
        Date.now(),
        nonce,
      ).headers;
      const send = () => request(strict.baseUrl, 'POST', HANDSHAKE_PATH, { rawBody: body.toString('utf8'), headers });
      // The strict instance may not call loopback, so the first answer is identity_mismatch; what counts is that it
      // tried
      // once.
      const first = await send();
      expect([first.status, errorCode(first)]).toEqual([403, 'identity_mismatch']);
      const replay = await send();
      expect([replay.status, errorCode(replay)]).toEqual([409, 'nonce_replayed']);

      const codes: string[] = [];
      for (let i = 0; i < 12; i++) {
        const another = await stranger(`flooder-${i}`);
        codes.push(
          errorCode(
            await handshake(
              strict,
              'connection.request',
              { ...publicIdentity(another), baseUrl: url },
              signingKey(another),
            ).send(),
          ),
        );
      }
      // 10 fetches a minute per address (the first request above was one of them).
      expect(codes.filter((code) => code === 'identity_mismatch')).toHaveLength(9);
      expect(codes.slice(9)).toEqual(['too_many_handshakes', 'too_many_handshakes', 'too_many_handshakes']);
    },
  );

  // ---- 7. wire strictness and interoperability ----

  it('refuses a repeated Signature or Signature-Input line', async () => {
    const sendRaw = (
      crafted: { body: Buffer; headers: Record<string, string> },
      repeat: string | null,
    ): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const lines = Object.entries(crafted.headers).flatMap(([name, value]) =>
          name === repeat ? [name, value, name, value] : [name, value],
        );
        const target = new URL(`${spoke.baseUrl}${INCOMING_COMMAND_PATH}`);
        const req = http.request(
          {
            host: target.hostname,
            port: target.port,
            path: target.pathname,
            method: 'POST',
            headers: ['host', target.host, ...lines],
          },
          (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end(crafted.body);
      });
    const twin = await sendRaw(command(), null);
    expect(twin.status).toBe(200); // valid twin
    for (const repeated of ['signature', 'signature-input']) {
      const before = await spokeState();
      const refused = await sendRaw(command(), repeated);
      expect([refused.status, (JSON.parse(refused.body) as { error: { code: string } }).error.code]).toEqual([
        400,
        'malformed_header',
      ]);
      expect(await spokeState()).toEqual(before);
    }
  });

  it(
    'signs replies over exactly the Content-Type they carry, and ' +
      'interoperates with an independent RFC 9421 implementation',
    async () => {
      const hubKey = signingKey(hub.identity.current());
      const spokeKeys = await hub.prisma.federationPeerKey.findMany({ where: { connectionId: link.hubConnectionId } });
      const keyLookup = ({ keyid }: { keyid?: string | undefined }) => {
        const raw = keyid === hubKey.keyId ? hubKey.publicKey : spokeKeys.find((key) => key.keyId === keyid)?.publicKey;
        return Promise.resolve(
          raw ? { id: keyid, algs: ['ed25519'], verify: createVerifier(publicKeyFromRaw(raw), 'ed25519') } : null,
        );
      };

      // Our request, verified by the library.
      const ours = command();
      const url = `${spoke.baseUrl}${INCOMING_COMMAND_PATH}`;
      expect(
        await httpbis.verifyMessage(
          { keyLookup, requiredFields: ['@method', '@authority', '@path', 'content-type', 'content-digest'] },
          { method: 'POST', url, headers: ours.headers },
        ),
      ).toBe(true);
      // Our reply as it came over the wire, verified by the library.
      const response = await fetch(url, { method: 'POST', headers: ours.headers, body: ours.body });
      const replyHeaders = Object.fromEntries(response.headers.entries());
      expect(replyHeaders['content-type']).toBe('application/json');
      expect(replyHeaders['content-digest']).toBe(contentDigest(Buffer.from(await response.arrayBuffer())));
      expect(
        await httpbis.verifyMessage(
          { keyLookup, requiredFields: ['@status', 'content-type', 'content-digest'] },
          { status: response.status, headers: replyHeaders },
        ),
      ).toBe(true);

      // A request the library signed with our profile, accepted by the spoke.
      const body = Buffer.from(
        JSON.stringify({
          messageId: randomUUID(),
          instanceId: hub.identity.current().instanceId,
          commandType: 'agent.status',
          payload: { agentId: `agent-${randomUUID()}` },
          timestamp: new Date().toISOString(),
          nonce: randomUUID().replace(/-/g, ''),
        }),
      );
      const signed = await httpbis.signMessage(
        {
          key: createSigner(hubKey.privateKey, 'ed25519', hubKey.keyId),
          name: 'sig1',
          fields: ['@method', '@authority', '@path', 'content-type', 'content-digest'],
          params: ['created', 'expires', 'nonce', 'keyid'],
          paramValues: { nonce: randomUUID().replace(/-/g, ''), expires: new Date(Date.now() + 60_000) },
        },
        { method: 'POST', url, headers: { 'content-type': 'application/json', 'content-digest': contentDigest(body) } },
      );
      const accepted = await request(spoke.baseUrl, 'POST', INCOMING_COMMAND_PATH, {
        rawBody: body.toString('utf8'),
        headers: signed.headers,
      });
      expect(accepted.status).toBe(200);
      expect(keyIdFor(hubKey.publicKey)).toBe(hubKey.keyId);
    },
  );

  /**
   * Sends raw bytes to the spoke and reads until it closes the socket (or `waitMs` passes): what came back, and whether
   * it closed.
   */
  function rawExchange(
    start: string,
    waitMs: number,
    body: Buffer = Buffer.alloc(0),
  ): Promise<{ answer: string; closed: boolean }> {
    return new Promise((resolve) => {
      const socket = net.connect(Number(new URL(spoke.baseUrl).port), '127.0.0.1');
      let answer = '';
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ answer, closed: false });
      }, waitMs);
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ answer, closed: true });
      });
      socket.write(Buffer.concat([Buffer.from(start), body]));
    });
  }
  const head = (length: number, extra = ''): string =>
    `POST ${INCOMING_COMMAND_PATH} HTTP/1.1\r\nhost: ` +
    `127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ` +
    `${length}\r\n${extra}\r\n`;

  it(
    'answers a body that claims too much at once, and one that stalls ' +
      'within the request timeout, then closes the socket',
    async () => {
      // The valid twin, over the same raw socket: a complete small body gets its (unauthenticated) refusal at once.
      const twin = await rawExchange(head(2, 'connection: close\r\n'), 5_000, Buffer.from('{}'));
      expect(twin.answer).toMatch(/^HTTP\/1\.1 401/);
      const rows = await spoke.prisma.federationCommand.count();

      const claimsTooMuch = await rawExchange(head(10 * 1024 * 1024), 5_000, Buffer.from('hello'));
      expect(claimsTooMuch.closed).toBe(true);
      expect(claimsTooMuch.answer).toMatch(/^HTTP\/1\.1 413[\s\S]*"code":"payload_too_large"/);

      const stalls = await rawExchange(head(100), 30_000, Buffer.from('{"messa'));
      expect(stalls.closed).toBe(true);
      expect(stalls.answer).toMatch(/^HTTP\/1\.1 408[\s\S]*"code":"request_timeout"/);
      expect(await spoke.prisma.federationCommand.count()).toBe(rows);
    },
    60_000,
  );

  it('refuses an encoded body: the digest covers the bytes as sent, and nothing is inflated', async () => {
    const valid = command();
    expect((await valid.send()).status).toBe(200);
    const before = await spokeState();
    const rows = await spoke.prisma.federationCommand.count();
    const encoded = command();
    const gzipped = gzipSync(encoded.body);
    const signed = signRequest(
      `${spoke.baseUrl}${INCOMING_COMMAND_PATH}`,
      gzipped,
      signingKey(hub.identity.current()),
      Date.now(),
      randomUUID().replace(/-/g, ''),
    );
    const refused = await rawExchange(
      head(
        gzipped.length,
        `content-encoding: gzip\r\n${Object.entries(signed.headers)
          .filter(([name]) => name !== 'content-type')
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('')}`,
      ),
      5_000,
      gzipped,
    );
    expect(refused.answer).toMatch(/^HTTP\/1\.1 415[\s\S]*"code":"unsupported_encoding"/);
    expect(await spokeState()).toEqual(before);
    expect(await spoke.prisma.federationCommand.count()).toBe(rows);
  });

  it('counts a body refused for its size like every other unauthenticated refusal, storing nothing', async () => {
    const valid = command();
    expect((await valid.send()).status).toBe(200);
    const counted = await rejections('command', 'payload_too_large');
    const oversized = command(undefined, { payload: { pad: 'x'.repeat(70 * 1024) } });
    await expectRefusedAndNothingChanged(oversized.send, 413, 'payload_too_large');
    expect(await spoke.prisma.federationCommand.count({ where: { errorCode: 'payload_too_large' } })).toBe(0);
    expect(await rejections('command', 'payload_too_large')).toBe(counted + 1);
  });
});
