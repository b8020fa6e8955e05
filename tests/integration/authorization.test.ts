import { issueAdminToken, issueApiToken } from '../../api/auth';
import { publicIdentity, signingKey } from '../../federation/identity';
import { HANDSHAKE_PATH } from '../../federation/client';
import { signRequest } from '../../federation/messages';
import { bearer } from '../helpers/federation';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/**
 * Instance-wide operations are the administrator's: key rotation, accepting or rejecting a peer's
 * request, diagnostics. A workspace token does them not, an administrator token acts in no workspace,
 * and each refusal changes nothing.
 */
describe('authorization scopes', () => {
  let instance: TestInstance;
  let peer: TestInstance;
  let adminToken: string;
  let workspaceToken: string;
  let connectionId: string;
  const workspaceName = `scopes-${Date.now()}`;

  beforeAll(async () => {
    instance = await startTestInstance();
    peer = await startTestInstance({}, { worker: false });
    adminToken = (await issueAdminToken(instance.prisma)).token;
    workspaceToken = (await issueApiToken(instance.prisma, workspaceName)).token;
    connectionId = await peerRequest();
  });
  afterAll(async () => {
    await instance.stop();
    await peer.stop();
  });

  const call = (method: string, path: string, token: string | null, json?: unknown): Promise<JsonResponse> =>
    request(instance.baseUrl, method, path, {
      ...(token ? { headers: bearer(token) } : {}),
      ...(json !== undefined ? { json } : {}),
    });
  const state = async () => ({
    keys: instance.identity.current().keys.map((key) => key.keyId),
    connections: await instance.prisma.federationConnection.findMany({
      orderBy: { id: 'asc' },
      select: { id: true, status: true, workspaceId: true },
    }),
    checks: await instance.prisma.sandboxCheck.count(),
  });

  /** A peer's request for a connection, PENDING and in no workspace. */
  async function peerRequest(): Promise<string> {
    const identity = peer.identity.current();
    const nonce = `n${Date.now()}${Math.random().toString(36).slice(2)}`.padEnd(20, 'x');
    const body = Buffer.from(
      JSON.stringify({
        type: 'connection.request',
        instance: publicIdentity(identity),
        timestamp: new Date().toISOString(),
        nonce,
      }),
    );
    const headers = signRequest(
      `${instance.baseUrl}${HANDSHAKE_PATH}`,
      body,
      signingKey(identity),
      Date.now(),
      nonce,
    ).headers;
    const sent = await request(instance.baseUrl, 'POST', HANDSHAKE_PATH, { rawBody: body.toString('utf8'), headers });
    expect(sent.status).toBe(202);
    return (
      await instance.prisma.federationConnection.findUniqueOrThrow({ where: { peerInstanceId: identity.instanceId } })
    ).id;
  }

  it('shows a peer’s unclaimed request to the administrator only', async () => {
    const asWorkspace = await call('GET', '/api/v1/federation/connections', workspaceToken);
    const asAdmin = await call('GET', '/api/v1/federation/connections', adminToken);
    const ids = (response: JsonResponse) =>
      (response.body as { connections: Array<{ id: string; workspaceId?: string }> }).connections.map(
        (connection) => connection.id,
      );
    const unclaimed = (await instance.prisma.federationConnection.findMany({ where: { workspaceId: null } })).map(
      (connection) => connection.id,
    );
    expect(unclaimed).toContain(connectionId);
    for (const id of unclaimed) {
      expect(ids(asWorkspace)).not.toContain(id);
      expect(ids(asAdmin)).toContain(id);
    }
  });

  it('accepts a peer only into a workspace that exists', async () => {
    const before = await state();
    const refused = await call('POST', `/api/v1/federation/connections/${connectionId}/accept`, adminToken, {
      workspace: 'no-such-workspace',
    });
    expect([refused.status, errorCode(refused)]).toEqual([404, 'unknown_workspace']);
    expect(await state()).toEqual(before);
  });

  it(
    'refuses instance-wide operations to a workspace token and to no token, ' + 'and lets the administrator do them',
    async () => {
      const operations: Array<[string, string, string, unknown]> = [
        ['key rotation', 'POST', '/api/v1/federation/keys/rotate', { overlapSeconds: 60 }],
        [
          'accepting a peer',
          'POST',
          `/api/v1/federation/connections/${connectionId}/accept`,
          { workspace: workspaceName },
        ],
        ['rejecting a peer', 'POST', `/api/v1/federation/connections/${connectionId}/reject`, undefined],
        ['starting a diagnostic', 'POST', '/diagnostics/sandbox-checks', {}],
      ];
      for (const [name, method, path, json] of operations) {
        const before = await state();
        const anonymous = await call(method, path, null, json);
        expect([name, anonymous.status, errorCode(anonymous)]).toEqual([name, 401, 'unauthorized']);
        const workspace = await call(method, path, workspaceToken, json);
        expect([name, workspace.status, errorCode(workspace)]).toEqual([name, 403, 'admin_required']);
        expect(await state()).toEqual(before);
      }

      // The valid twins, with the administrator's token.
      const rotated = await call('POST', '/api/v1/federation/keys/rotate', adminToken, { overlapSeconds: 60 });
      expect(rotated.status).toBe(200);
      const accepted = await call('POST', `/api/v1/federation/connections/${connectionId}/accept`, adminToken, {
        workspace: workspaceName,
        allowedCommandTypes: ['agent.status'],
      });
      expect(accepted.body).toMatchObject({
        status: 'ACTIVE',
        allowedCommandTypes: ['agent.status'],
        allowLocalRepositories: false,
      });
      const { id: workspaceId } = await instance.prisma.workspace.findUniqueOrThrow({ where: { name: workspaceName } });
      expect(
        (await instance.prisma.federationConnection.findUniqueOrThrow({ where: { id: connectionId } })).workspaceId,
      ).toBe(workspaceId);
      const check = await call('POST', '/diagnostics/sandbox-checks', adminToken, {});
      expect(check.status).toBe(202);
    },
  );

  it('keeps the administrator out of workspaces: an administrator token spawns and lists no agents', async () => {
    const agents = await instance.prisma.agent.count();
    for (const [method, path, json] of [
      [
        'POST',
        '/agents/spawn',
        { taskId: 'admin', agentType: 'worker', context: { repository: '/tmp/x', branch: 'main', workItems: ['x'] } },
      ],
      ['GET', '/agents', undefined],
      ['POST', '/api/v1/federation/connections', { peerUrl: peer.baseUrl }],
    ] as const) {
      const response = await call(method, path, adminToken, json);
      expect([path, response.status, errorCode(response)]).toEqual([path, 403, 'workspace_token_required']);
    }
    expect(await instance.prisma.agent.count()).toBe(agents);
    expect((await call('GET', '/agents', workspaceToken)).status).toBe(200); // the valid twin
  });
});
