import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { issueAdminToken, issueApiToken } from '../../api/auth';
import { INCOMING_COMMAND_PATH } from '../../federation/client';
import { createIdentityHolder, signingKey, type InstanceKey } from '../../federation/identity';
import { signRequest, signResponse, verifyResponse, type CommandEnvelope } from '../../federation/messages';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { createTestDatabase } from '../helpers/databases';
import { createRepository } from '../helpers/git-repo';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { freePort } from '../helpers/ports';

/**
 * Two real instances on loopback, each with its own database, keys and data folder: A (the hub)
 * sends signed commands to B (the spoke). Hostile variants are built by hand from a valid request.
 */
const RATE_LIMIT = 150;

describe('federation between two instances', () => {
  const model = new FakeAnthropic(byTurn([reply.text('Done.')]));
  let hub: TestInstance;
  let spoke: TestInstance;
  let spokeDataDir: string;
  let spokeDatabaseUrl: string;
  let spokePort: number;
  let hubToken: string;
  let spokeToken: string;
  let spokeWorkspaceId: string;
  let hubAdminToken: string;
  let spokeAdminToken: string;
  const spokeWorkspace = `spoke-${Date.now()}`;
  let hubConnectionId: string;
  let spokeConnectionId: string;
  let spokeAgentId: string;

  const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const startSpoke = () =>
    startTestInstance({
      DATABASE_URL: spokeDatabaseUrl,
      DATA_DIR: spokeDataDir,
      API_PORT: String(spokePort), // a restart keeps its address, as a real one would
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      FEDERATION_RATE_LIMIT: String(RATE_LIMIT),
    });

  beforeAll(async () => {
    await model.start();
    spokeDataDir = await mkdtemp(path.join(os.tmpdir(), 'spoke-'));
    spokeDatabaseUrl = await createTestDatabase();
    spokePort = await freePort();
    hub = await startTestInstance();
    spoke = await startSpoke();
    hubToken = (await issueApiToken(hub.prisma, `hub-${Date.now()}`)).token;
    ({ token: spokeToken, workspaceId: spokeWorkspaceId } = await issueApiToken(spoke.prisma, spokeWorkspace));
    hubAdminToken = (await issueAdminToken(hub.prisma)).token;
    spokeAdminToken = (await issueAdminToken(spoke.prisma)).token;
  });
  afterAll(async () => {
    await hub.stop();
    await spoke.stop();
    await model.stop();
  });

  it('publishes each instance’s identity and key', async () => {
    const identity = await request(spoke.baseUrl, 'GET', '/api/v1/federation/instance');
    expect(identity.status).toBe(200);
    expect(identity.body).toMatchObject({
      instanceId: spoke.identity.current().instanceId,
      baseUrl: spoke.baseUrl,
      keys: [{ algorithm: 'ed25519', status: 'active' }],
    });
    expect(identity.text).not.toMatch(/PRIVATE/);
  });

  it(
    'connects through a handshake: request, accept; both sides hold the ' + 'peer’s URL, keys and allowed commands',
    async () => {
      const requested = await request(hub.baseUrl, 'POST', '/api/v1/federation/connections', {
        headers: auth(hubToken),
        json: { peerUrl: spoke.baseUrl, allowedCommandTypes: ['agent.status'] },
      });
      expect(requested.status).toBe(201);
      expect(requested.body).toMatchObject({
        status: 'PENDING',
        peerInstanceId: spoke.identity.current().instanceId,
        initiatedBy: 'local',
      });
      hubConnectionId = (requested.body as { id: string }).id;

      // A peer's request belongs to no workspace yet: the spoke's administrator sees it and accepts it into one.
      expect(
        (
          (await request(spoke.baseUrl, 'GET', '/api/v1/federation/connections', { headers: auth(spokeToken) }))
            .body as {
            connections: unknown[];
          }
        ).connections,
      ).toEqual([]);
      const pending = await request(spoke.baseUrl, 'GET', '/api/v1/federation/connections', {
        headers: auth(spokeAdminToken),
      });
      const incoming = (
        pending.body as { connections: Array<{ id: string; status: string; initiatedBy: string; peerUrl: string }> }
      ).connections;
      expect(incoming).toEqual([
        expect.objectContaining({ status: 'PENDING', initiatedBy: 'peer', peerUrl: hub.baseUrl }),
      ]);
      spokeConnectionId = incoming[0]!.id;

      const accepted = await request(
        spoke.baseUrl,
        'POST',
        `/api/v1/federation/connections/${spokeConnectionId}/accept`,
        {
          headers: auth(spokeAdminToken),
          json: {
            workspace: spokeWorkspace,
            allowedCommandTypes: ['agent.spawn', 'agent.status'],
            allowLocalRepositories: true,
          },
        },
      );
      expect(accepted.body).toMatchObject({
        status: 'ACTIVE',
        peerNotified: true,
        allowedCommandTypes: ['agent.spawn', 'agent.status'],
        allowLocalRepositories: true,
      });
      const hubSide = await hub.prisma.federationConnection.findUniqueOrThrow({
        where: { id: hubConnectionId },
        include: { keys: true },
      });
      expect(hubSide.status).toBe('ACTIVE');
      expect(hubSide.keys.map((key) => key.keyId)).toEqual([signingKey(spoke.identity.current()).keyId]);
    },
  );

  it(
    'runs the happy path hub → spoke: a signed spawn, a verified signed ' + 'reply, the agent runs on the spoke',
    async () => {
      const spawned = await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
        headers: auth(hubToken),
        json: {
          connectionId: hubConnectionId,
          taskId: 'fed-1',
          agentType: 'worker',
          context: { repository: await createRepository(), branch: 'main', workItems: ['hello'] },
        },
      });
      expect(spawned.status).toBe(202);
      const { agentId } = (spawned.body as { data: { agentId: string } }).data;
      expect(((await hub.temporal.workflow.getHandle(agentId).result()) as { state: string }).state).toBe('completed');
      spokeAgentId = (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId ?? '';
      expect(((await spoke.temporal.workflow.getHandle(spokeAgentId).result()) as AgentStatus).state).toBe('completed');

      const status = await request(hub.baseUrl, 'POST', '/api/v1/federation/command', {
        headers: auth(hubToken),
        json: { connectionId: hubConnectionId, commandType: 'agent.status', payload: { agentId: spokeAgentId } },
      });
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({
        status: 'succeeded',
        reply: { status: 'ok', result: { agentId: spokeAgentId, status: 'completed' } },
      });
      expect(status.body).not.toHaveProperty('rawReply');

      const hubLog = await request(hub.baseUrl, 'GET', '/api/v1/federation/commands?direction=outbound', {
        headers: auth(hubToken),
      });
      const outbound = (hubLog.body as { commands: Array<{ commandType: string; status: string }> }).commands;
      expect(outbound[0]).toMatchObject({ commandType: 'agent.status', status: 'succeeded' });
      expect(outbound.at(-1)).toMatchObject({ commandType: 'agent.spawn', status: 'succeeded' });
      const spokeLog = await request(spoke.baseUrl, 'GET', '/api/v1/federation/commands?direction=inbound', {
        headers: auth(spokeToken),
      });
      const inbound = (spokeLog.body as { commands: Array<{ id: string; commandType: string; status: string }> })
        .commands;
      expect(inbound.map((c) => c.commandType)).toEqual(outbound.map((c) => c.commandType));
      const one = await request(spoke.baseUrl, 'GET', `/api/v1/federation/commands/${inbound.at(-1)!.id}`, {
        headers: auth(spokeToken),
      });
      expect(one.body).toMatchObject({
        direction: 'inbound',
        commandType: 'agent.spawn',
        status: 'succeeded',
        reply: { status: 'ok' },
      });
    },
  );

  it('runs the happy path spoke → hub: the hub answers what it allows, signed', async () => {
    const sent = await request(spoke.baseUrl, 'POST', '/api/v1/federation/command', {
      headers: auth(spokeToken),
      json: {
        connectionId: spokeConnectionId,
        commandType: 'agent.status',
        payload: { agentId: `agent-${randomUUID()}` },
      },
    });
    // The hub processed it (signed reply) and found no such agent: a verified error outcome.
    expect(sent.body).toMatchObject({
      status: 'failed',
      errorCode: 'not_found',
      reply: { status: 'error', error: { code: 'not_found' } },
    });
  });

  // ---- hostile peers: each mutation of a valid request has a valid twin that passes ----

  interface Crafted {
    body: Buffer;
    headers: Record<string, string>;
  }

  function craft(
    options: {
      key?: InstanceKey;
      now?: number;
      envelope?: Partial<CommandEnvelope>;
      bodyText?: string;
      url?: string;
    } = {},
  ): Crafted {
    const hubIdentity = hub.identity.current();
    const nonce = randomUUID().replace(/-/g, '');
    const envelope: CommandEnvelope = {
      messageId: randomUUID(),
      instanceId: hubIdentity.instanceId,
      commandType: 'agent.status',
      payload: { agentId: spokeAgentId },
      timestamp: new Date().toISOString(),
      nonce,
      ...options.envelope,
    };
    const body = Buffer.from(options.bodyText ?? JSON.stringify(envelope));
    const signed = signRequest(
      options.url ?? `${spoke.baseUrl}${INCOMING_COMMAND_PATH}`,
      body,
      options.key ?? signingKey(hubIdentity),
      options.now ?? Date.now(),
      nonce,
    );
    return { body, headers: signed.headers };
  }

  const send = (crafted: Crafted): Promise<JsonResponse> =>
    request(spoke.baseUrl, 'POST', INCOMING_COMMAND_PATH, {
      rawBody: crafted.body.toString('utf8'),
      headers: crafted.headers,
    });

  async function spokeState() {
    const connection = await spoke.prisma.federationConnection.findUniqueOrThrow({ where: { id: spokeConnectionId } });
    return {
      // This file's workspace only: other test files share the peer database.
      agents: await spoke.prisma.agent.count({ where: { workspaceId: spokeWorkspaceId } }),
      workflows: (await spoke.temporal.workflow.count(`TaskQueue = "${spoke.taskQueue}"`)).count,
      connection: [connection.status, connection.updatedAt.toISOString()],
    };
  }

  /** The valid twin passes; the hostile request is refused with the code, and nothing started or changed. */
  async function expectRefused(
    hostile: Crafted | (() => Promise<JsonResponse>),
    status: number,
    code: string,
  ): Promise<void> {
    const twin = await send(craft());
    expect(twin.status).toBe(200);
    verifyResponse(
      twin.status,
      Object.fromEntries(twin.headers.entries()),
      Buffer.from(twin.text),
      await hub.prisma.federationPeerKey.findMany({ where: { connectionId: hubConnectionId } }),
    );
    const before = await spokeState();
    const response = typeof hostile === 'function' ? await hostile() : await send(hostile);
    expect(response.status).toBe(status);
    expect(errorCode(response)).toBe(code);
    expect(await spokeState()).toEqual(before);
  }

  it('refuses a replay, also after the spoke restarts', async () => {
    const original = craft();
    expect((await send(original)).status).toBe(200);
    await expectRefused(original, 409, 'nonce_replayed');
    await spoke.stop();
    spoke = await startSpoke();
    await expectRefused(original, 409, 'nonce_replayed');
  });

  it('refuses expired and future signatures', async () => {
    await expectRefused(craft({ now: Date.now() - 10 * 60_000 }), 401, 'signature_expired');
    await expectRefused(craft({ now: Date.now() + 10 * 60_000 }), 401, 'signature_not_yet_valid');
  });

  it('refuses a tampered body whose digest header was kept', async () => {
    const valid = craft();
    const tampered = Buffer.from(valid.body.toString('utf8').replace('agent.status', 'agent.spawn'));
    await expectRefused({ body: tampered, headers: valid.headers }, 400, 'digest_mismatch');
  });

  it('refuses stripped digest or signature headers', async () => {
    const withoutDigest = craft();
    delete withoutDigest.headers['content-digest'];
    await expectRefused(withoutDigest, 401, 'missing_header');
    const withoutSignature = craft();
    delete withoutSignature.headers.signature;
    await expectRefused(withoutSignature, 401, 'missing_header');
  });

  it('refuses a wrong key, an unknown instance and a signature meant for another host', async () => {
    const stranger = createIdentityHolder({
      dataDir: await mkdtemp(path.join(os.tmpdir(), 'stranger-')),
      name: 'stranger',
      baseUrl: 'http://127.0.0.1:9',
    }).current();
    await expectRefused(
      craft({ key: { ...signingKey(stranger), keyId: signingKey(hub.identity.current()).keyId } }),
      401,
      'bad_signature',
    );
    await expectRefused(
      craft({ key: signingKey(stranger), envelope: { instanceId: stranger.instanceId } }),
      401,
      'unknown_key',
    );
    await expectRefused(craft({ url: `http://127.0.0.1:1${INCOMING_COMMAND_PATH}` }), 401, 'bad_signature');
    await expectRefused(craft({ envelope: { instanceId: stranger.instanceId } }), 403, 'instance_mismatch');
  });

  it('refuses malformed JSON, duplicate keys, a wrong content type, an oversized body and a bad envelope', async () => {
    await expectRefused(craft({ bodyText: '{"messageId": ' }), 400, 'malformed_json');
    const duplicated = JSON.stringify({
      messageId: randomUUID(),
      instanceId: hub.identity.current().instanceId,
      commandType: 'agent.status',
      payload: {},
      timestamp: new Date().toISOString(),
      nonce: 'x',
    }).replace('"commandType":"agent.status"', '"commandType":"agent.status","commandType":"agent.spawn"');
    await expectRefused(craft({ bodyText: duplicated }), 400, 'duplicate_key');
    const textPlain = craft();
    await expectRefused(
      () =>
        request(spoke.baseUrl, 'POST', INCOMING_COMMAND_PATH, {
          rawBody: textPlain.body.toString(),
          headers: { ...textPlain.headers, 'content-type': 'text/plain' },
        }),
      415,
      'wrong_content_type',
    );
    await expectRefused(craft({ bodyText: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) }), 413, 'payload_too_large');
    await expectRefused(craft({ envelope: { messageId: 'not-a-uuid' } }), 400, 'invalid_envelope');
  });

  it('refuses a command type the connection does not allow', async () => {
    await expectRefused(
      craft({ envelope: { commandType: 'agent.kill', payload: { agentId: spokeAgentId } } }),
      403,
      'command_not_allowed',
    );
    await expectRefused(craft({ envelope: { commandType: 'shell.exec' } }), 403, 'command_not_allowed');
  });

  it('answers a retried messageId with the stored reply and refuses it with another body', async () => {
    // A retry after a lost reply sends the same bytes under a fresh signature (new signature nonce).
    const envelope = {
      messageId: randomUUID(),
      nonce: randomUUID().replace(/-/g, ''),
      timestamp: new Date().toISOString(),
    };
    const first = await send(craft({ envelope }));
    expect(first.status).toBe(200);
    const again = await send(craft({ envelope }));
    expect(again.status).toBe(200);
    expect((again.body as { messageId: string }).messageId).toBe((first.body as { messageId: string }).messageId);
    await expectRefused(
      craft({ envelope: { ...envelope, payload: { agentId: `agent-${randomUUID()}` } } }),
      409,
      'message_id_conflict',
    );
  });

  it('runs concurrent copies of one spawn once, and answers every copy with the same reply', async () => {
    // The valid twin: one copy alone gets its answer.
    const twin = await send(craft());
    expect(twin.status).toBe(200);
    const repository = await createRepository();
    const envelope = {
      messageId: randomUUID(),
      nonce: randomUUID().replace(/-/g, ''),
      timestamp: new Date().toISOString(),
      commandType: 'agent.spawn' as const,
      payload: {
        taskId: `dup-${Date.now()}`,
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['hello'] },
      },
    };
    const before = await spokeState();
    // Each copy has its own signature (and signature nonce) over the same bytes, as a retrying sender's would.
    const answers = await Promise.all(Array.from({ length: 5 }, () => send(craft({ envelope }))));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    const replies = answers.map(
      (answer) => answer.body as { messageId: string; status: string; result: { agentId: string } },
    );
    expect(new Set(replies.map((reply) => reply.messageId)).size).toBe(1);
    expect(replies[0]?.status).toBe('ok');
    const after = await spokeState();
    expect(after.agents).toBe(before.agents + 1);
    expect(
      await spoke.prisma.federationCommand.count({ where: { direction: 'inbound', messageId: envelope.messageId } }),
    ).toBe(1);
    await spoke.temporal.workflow.getHandle(replies[0]?.result.agentId ?? '').result();
  });

  it(
    'frees the messageId of a command whose handler failed, so the retry ' +
      'runs it once and nothing is left half done',
    async () => {
      const twin = await send(craft()); // the valid twin: the channel answers before the fault
      expect(twin.status).toBe(200);
      const repository = await createRepository();
      const taskId = `handler-fails-${Date.now()}`;
      const envelope = {
        messageId: randomUUID(),
        nonce: randomUUID().replace(/-/g, ''),
        timestamp: new Date().toISOString(),
        commandType: 'agent.spawn' as const,
        payload: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: ['hello'] } },
      };
      // The spoke's database refuses this task's agent row, as a database failing mid-command would.
      await spoke.prisma.$executeRawUnsafe(
        `CREATE FUNCTION refuse_agent() RETURNS trigger AS $$ BEGIN IF ` +
          `NEW.task_id = '${taskId}' THEN RAISE EXCEPTION 'injected failure'; END ` +
          `IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
      );
      await spoke.prisma.$executeRawUnsafe(
        'CREATE TRIGGER refuse_agent BEFORE INSERT ON agents FOR EACH ROW EXECUTE FUNCTION refuse_agent()',
      );
      const before = await spokeState();
      const failed = await send(craft({ envelope }));
      expect(failed.status).toBe(500);
      expect(failed.body).toMatchObject({ success: false, error: { code: 'internal_error' } });
      expect(JSON.stringify(failed.body)).not.toMatch(/injected|at .*\.ts/); // no internals, no stack
      expect(await spokeState()).toEqual(before);
      expect(
        await spoke.prisma.federationCommand.count({ where: { direction: 'inbound', messageId: envelope.messageId } }),
      ).toBe(0);

      await spoke.prisma.$executeRawUnsafe('DROP TRIGGER refuse_agent ON agents');
      await spoke.prisma.$executeRawUnsafe('DROP FUNCTION refuse_agent()');
      const retried = await send(craft({ envelope }));
      expect(retried.status).toBe(200);
      const reply = retried.body as { status: string; result: { agentId: string } };
      expect(reply.status).toBe('ok');
      expect((await spokeState()).agents).toBe(before.agents + 1);
      expect(
        await spoke.prisma.federationCommand.count({ where: { direction: 'inbound', messageId: envelope.messageId } }),
      ).toBe(1);
      await spoke.temporal.workflow.getHandle(reply.result.agentId).result();
    },
  );

  it('refuses commands on a suspended connection, and accepts them again after resume', async () => {
    await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${spokeConnectionId}/suspend`, {
      headers: auth(spokeToken),
    });
    expect((await hub.prisma.federationConnection.findUniqueOrThrow({ where: { id: hubConnectionId } })).status).toBe(
      'SUSPENDED',
    );
    const refused = await send(craft());
    expect(refused.status).toBe(403);
    expect(errorCode(refused)).toBe('connection_suspended');
    await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${spokeConnectionId}/resume`, {
      headers: auth(spokeToken),
    });
    expect((await send(craft())).status).toBe(200);
  });

  it('rotates keys with an overlap window, then refuses the rotated-out key', async () => {
    const oldKey = signingKey(hub.identity.current());
    const rotated = await request(hub.baseUrl, 'POST', '/api/v1/federation/keys/rotate', {
      headers: auth(hubAdminToken),
      json: { overlapSeconds: 3600 },
    });
    expect(rotated.body).toMatchObject({ notified: [hubConnectionId] });
    const newKey = signingKey(hub.identity.current());
    expect(newKey.keyId).not.toBe(oldKey.keyId);
    expect((await send(craft({ key: newKey }))).status).toBe(200);
    expect((await send(craft({ key: oldKey }))).status).toBe(200); // inside the overlap window

    await request(hub.baseUrl, 'POST', '/api/v1/federation/keys/rotate', {
      headers: auth(hubAdminToken),
      json: { overlapSeconds: 0 },
    });
    await expectRefused(craft({ key: newKey }), 401, 'key_expired');
  });

  it('refuses a flood beyond the per-connection rate limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < RATE_LIMIT + 10 && !statuses.includes(429); i++) statuses.push((await send(craft())).status);
    expect(statuses.at(-1)).toBe(429);
    expect(new Set(statuses.slice(0, -1))).toEqual(new Set([200]));
    const limited = await send(craft());
    expect(limited.status).toBe(429);
    expect(errorCode(limited)).toBe('rate_limited');
  });

  it('refuses everything on a disconnected connection', async () => {
    await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${spokeConnectionId}/disconnect`, {
      headers: auth(spokeToken),
    });
    expect((await hub.prisma.federationConnection.findUniqueOrThrow({ where: { id: hubConnectionId } })).status).toBe(
      'DISCONNECTED',
    );
    const refused = await send(craft());
    expect(refused.status).toBe(403);
    expect(errorCode(refused)).toBe('connection_disconnected');
  });

  it('accepts a reply only when the peer signed it for this very command', async () => {
    // A stand-in peer on loopback that answers with whatever reply the case builds.
    let answer: (envelope: CommandEnvelope) => { body: Buffer; headers: Record<string, string> } = () => ({
      body: Buffer.from('{}'),
      headers: {},
    });
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const reply = answer(JSON.parse(Buffer.concat(chunks).toString('utf8')) as CommandEnvelope);
        res.writeHead(200, reply.headers).end(reply.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fakeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const spokeIdentity = spoke.identity.current();
    const spokeKey = signingKey(spokeIdentity);
    const connection = await hub.prisma.federationConnection.findUniqueOrThrow({ where: { id: hubConnectionId } });
    await hub.prisma.federationConnection.update({
      where: { id: hubConnectionId },
      data: { peerUrl: fakeUrl, status: 'ACTIVE' },
    });

    const signedReply = (
      envelope: CommandEnvelope,
      changes: Record<string, unknown> = {},
      key: InstanceKey = spokeKey,
    ) => {
      const body = Buffer.from(
        JSON.stringify({
          messageId: randomUUID(),
          inReplyTo: envelope.messageId,
          instanceId: spokeIdentity.instanceId,
          requestNonce: envelope.nonce,
          status: 'ok',
          result: {},
          timestamp: new Date().toISOString(),
          ...changes,
        }),
      );
      return { body, headers: signResponse(200, body, key) };
    };
    const stranger = signingKey(
      createIdentityHolder({
        dataDir: await mkdtemp(path.join(os.tmpdir(), 'forger-')),
        name: 'forger',
        baseUrl: 'http://127.0.0.1:9',
      }).current(),
    );
    const cases: Array<[string, typeof answer]> = [
      ['succeeded', (envelope) => signedReply(envelope)],
      ['reply_bad_signature', (envelope) => signedReply(envelope, {}, { ...stranger, keyId: spokeKey.keyId })],
      ['reply_unknown_key', (envelope) => signedReply(envelope, {}, stranger)],
      ['reply_mismatch', (envelope) => signedReply(envelope, { inReplyTo: randomUUID() })],
      ['reply_mismatch', (envelope) => signedReply(envelope, { requestNonce: 'another-request-nonce' })],
      [
        'reply_digest_mismatch',
        (envelope) => {
          const reply = signedReply(envelope);
          return {
            ...reply,
            body: Buffer.from(reply.body.toString('utf8').replace('"status":"ok"', '"status":"ok" ')),
          };
        },
      ],
      [
        'reply_missing_header',
        (envelope) => ({ body: signedReply(envelope).body, headers: { 'content-type': 'application/json' } }),
      ],
    ];
    try {
      for (const [expected, build] of cases) {
        answer = build;
        const sent = await request(hub.baseUrl, 'POST', '/api/v1/federation/command', {
          headers: auth(hubToken),
          json: { connectionId: hubConnectionId, commandType: 'agent.status', payload: { agentId: spokeAgentId } },
        });
        const command = sent.body as { status: string; errorCode: string | null };
        expect(expected === 'succeeded' ? command.status : command.errorCode).toBe(expected);
      }
    } finally {
      await hub.prisma.federationConnection.update({
        where: { id: hubConnectionId },
        data: { peerUrl: connection.peerUrl, status: connection.status },
      });
      server.close();
    }
  });

  it('lets the asked instance reject a new request, and both sides end disconnected', async () => {
    const requested = await request(hub.baseUrl, 'POST', '/api/v1/federation/connections', {
      headers: auth(hubToken),
      json: { peerUrl: spoke.baseUrl },
    });
    expect(requested.status).toBe(201);
    expect(requested.body).toMatchObject({ status: 'PENDING' });
    const listed = await request(spoke.baseUrl, 'GET', '/api/v1/federation/connections', {
      headers: auth(spokeAdminToken),
    });
    expect((listed.body as { connections: Array<{ id: string; status: string }> }).connections).toEqual([
      expect.objectContaining({ id: spokeConnectionId, status: 'PENDING' }),
    ]);

    // Only the asked side may accept; the asking side cannot accept its own request.
    const selfAccept = await request(hub.baseUrl, 'POST', `/api/v1/federation/connections/${hubConnectionId}/accept`, {
      headers: auth(hubAdminToken),
      json: { workspace: 'anything' },
    });
    expect(selfAccept.status).toBe(409);
    const rejected = await request(
      spoke.baseUrl,
      'POST',
      `/api/v1/federation/connections/${spokeConnectionId}/reject`,
      { headers: auth(spokeAdminToken) },
    );
    expect(rejected.body).toMatchObject({ status: 'DISCONNECTED', peerNotified: true });
    expect((await hub.prisma.federationConnection.findUniqueOrThrow({ where: { id: hubConnectionId } })).status).toBe(
      'DISCONNECTED',
    );
    const refused = await send(craft());
    expect(refused.status).toBe(403);
  });
});
