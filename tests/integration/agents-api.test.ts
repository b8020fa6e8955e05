import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { createRepository } from '../helpers/git-repo';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/** The orchestrator REST API's contract: auth, validation, ownership, idempotent spawns, listing. */
describe('orchestrator API', () => {
  const model = new FakeAnthropic(byTurn([reply.text('Done.')]));
  let instance: TestInstance;
  let token: string;
  let otherToken: string;
  let workspaceIds: string[];
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
    const mine = await issueApiToken(instance.prisma, `api-${Date.now()}`);
    const other = await issueApiToken(instance.prisma, `other-${Date.now()}`);
    token = mine.token;
    otherToken = other.token;
    workspaceIds = [mine.workspaceId, other.workspaceId];
    repository = await createRepository();
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const as = (bearer: string): Record<string, string> => ({ authorization: `Bearer ${bearer}` });
  const body = (taskId: string, overrides: Record<string, unknown> = {}) => ({
    taskId,
    agentType: 'worker',
    context: { repository, branch: 'main', workItems: ['Say hello'] },
    ...overrides,
  });

  /** Rows in this file's workspaces and workflows on this instance's queue stay as they were. */
  async function nothingStarted<T>(action: () => Promise<T>): Promise<T> {
    const ours = { workspaceId: { in: workspaceIds } };
    const rows = await instance.prisma.agent.count({ where: ours });
    const { count } = await instance.temporal.workflow.count(`TaskQueue = "${instance.taskQueue}"`);
    const result = await action();
    expect(await instance.prisma.agent.count({ where: ours })).toBe(rows);
    expect((await instance.temporal.workflow.count(`TaskQueue = "${instance.taskQueue}"`)).count).toBe(count);
    return result;
  }

  async function spawnAndFinish(taskId: string, agentType = 'worker'): Promise<string> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: body(taskId, { agentType }),
      headers: as(token),
    });
    expect(response.status).toBe(202);
    const { agentId } = response.body as { agentId: string };
    await instance.temporal.workflow.getHandle(agentId).result();
    return agentId;
  }

  it.each([
    ['no token', {}],
    ['a malformed header', { authorization: 'Token abc' }],
    ['an unknown token', { authorization: 'Bearer aot_not-a-real-token' }],
  ])('refuses %s with a JSON 401 and starts nothing', async (_name, headers) => {
    for (const [method, path] of [
      ['POST', '/agents/spawn'],
      ['GET', '/agents'],
      ['GET', '/agents/agent-00000000-0000-0000-0000-000000000000/status'],
      ['POST', '/agents/agent-00000000-0000-0000-0000-000000000000/kill'],
    ] as const) {
      const response = await nothingStarted(() =>
        request(instance.baseUrl, method, path, { ...(method === 'POST' ? { json: body('t') } : {}), headers }),
      );
      expect(response.status).toBe(401);
      expect(errorCode(response)).toBe('unauthorized');
    }
  });

  it.each([
    ['a missing taskId', { taskId: undefined }, 400],
    ['a taskId with spaces', { taskId: 'has spaces' }, 400],
    ['an unknown agentType', { agentType: 'admin' }, 400],
    ['a branch that escapes', { context: { repository: '/tmp/x', branch: '../main', workItems: [] } }, 400],
    [
      'a branch that looks like an option',
      { context: { repository: '/tmp/x', branch: '-upload-pack=evil', workItems: [] } },
      400,
    ],
    ['workItems that are not a list', { context: { repository: '/tmp/x', branch: 'main', workItems: 'do it' } }, 400],
    [
      'an unknown context field',
      { context: { repository: '/tmp/x', branch: 'main', workItems: [], shell: 'rm -rf /' } },
      400,
    ],
    ['a negative timeout', { options: { timeout: -1 } }, 400],
    ['too much memory', { options: { resources: { memoryMb: 1_000_000 } } }, 400],
    ['an unknown option', { options: { privileged: true } }, 400],
    ['an unknown top-level field', { extra: 1 }, 400],
  ])('rejects a spawn with %s: JSON 400, nothing started', async (_name, overrides, status) => {
    const response = await nothingStarted(() =>
      request(instance.baseUrl, 'POST', '/agents/spawn', { json: body('bad', overrides), headers: as(token) }),
    );
    expect(response.status).toBe(status);
    expect(errorCode(response)).toBe('validation_failed');
  });

  it.each([
    ['malformed JSON', '{"taskId": ', 'application/json', 400, 'invalid_json'],
    ['a non-JSON body', 'taskId=x', 'text/plain', 415, 'unsupported_media_type'],
    [
      'an oversized body',
      JSON.stringify(body('big', { context: { repository: 'x', branch: 'main', workItems: ['x'.repeat(300_000)] } })),
      'application/json',
      413,
      'payload_too_large',
    ],
  ])('rejects %s with the right JSON error, nothing started', async (_name, rawBody, contentType, status, code) => {
    const response: JsonResponse = await nothingStarted(() =>
      request(instance.baseUrl, 'POST', '/agents/spawn', {
        rawBody,
        headers: { ...as(token), 'content-type': contentType },
      }),
    );
    expect(response.status).toBe(status);
    expect(errorCode(response)).toBe(code);
  });

  it('answers 404 for unknown agents, 400 for malformed ids and 403 for another workspace’s', async () => {
    const unknown = 'agent-00000000-0000-0000-0000-000000000000';
    for (const [method, suffix] of [
      ['GET', 'status'],
      ['POST', 'kill'],
    ] as const) {
      const missing = await request(instance.baseUrl, method, `/agents/${unknown}/${suffix}`, { headers: as(token) });
      expect(missing.status).toBe(404);
      expect(errorCode(missing)).toBe('not_found');
      const malformed = await request(instance.baseUrl, method, `/agents/not-an-id/${suffix}`, { headers: as(token) });
      expect(malformed.status).toBe(400);
    }

    const agentId = await spawnAndFinish('task-owned');
    for (const [method, suffix] of [
      ['GET', 'status'],
      ['POST', 'kill'],
    ] as const) {
      const foreign = await request(instance.baseUrl, method, `/agents/${agentId}/${suffix}`, {
        headers: as(otherToken),
      });
      expect(foreign.status).toBe(403);
      expect(errorCode(foreign)).toBe('forbidden');
    }
    const mine = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: as(token) });
    expect(mine.status).toBe(200);
  });

  it('returns the live agent for a second spawn of the same task instead of starting another', async () => {
    model.setScript(byTurn([{ ...reply.text('slow'), delayMs: 60_000 }]));
    const first = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: body('task-dup'),
      headers: as(token),
    });
    expect(first.status).toBe(202);
    const { agentId } = first.body as { agentId: string };
    const second = await nothingStarted(() =>
      request(instance.baseUrl, 'POST', '/agents/spawn', { json: body('task-dup'), headers: as(token) }),
    );
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ agentId, existing: true });

    // Another workspace's task of the same name is its own.
    const other = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      json: body('task-dup'),
      headers: as(otherToken),
    });
    expect(other.status).toBe(202);

    for (const [id, bearer] of [
      [agentId, token],
      [(other.body as { agentId: string }).agentId, otherToken],
    ] as const) {
      await request(instance.baseUrl, 'POST', `/agents/${id}/kill`, { headers: as(bearer) });
      expect(((await instance.temporal.workflow.getHandle(id).result()) as AgentStatus).state).toBe('killed');
    }
    model.setScript(byTurn([reply.text('Done.')]));
    // Once the first one is finished, the task can run again.
    expect(
      (await request(instance.baseUrl, 'POST', '/agents/spawn', { json: body('task-dup'), headers: as(token) })).status,
    ).toBe(202);
  });

  it('lists the workspace’s agents newest first with filters and cursor pagination', async () => {
    const ids = [
      await spawnAndFinish('list-a'),
      await spawnAndFinish('list-b'),
      await spawnAndFinish('list-c', 'reviewer'),
    ];
    const first = await request(instance.baseUrl, 'GET', '/agents?limit=2', { headers: as(token) });
    expect(first.status).toBe(200);
    const page1 = first.body as { agents: Array<{ agentId: string }>; nextCursor: string };
    expect(page1.agents.map((agent) => agent.agentId)).toEqual([ids[2], ids[1]]);
    const second = await request(instance.baseUrl, 'GET', `/agents?limit=2&cursor=${page1.nextCursor}`, {
      headers: as(token),
    });
    expect((second.body as { agents: Array<{ agentId: string }> }).agents[0]!.agentId).toBe(ids[0]);

    const reviewers = await request(instance.baseUrl, 'GET', '/agents?agentType=reviewer&state=completed', {
      headers: as(token),
    });
    expect((reviewers.body as { agents: Array<{ agentId: string }> }).agents.map((agent) => agent.agentId)).toEqual([
      ids[2],
    ]);
    const byTask = await request(instance.baseUrl, 'GET', '/agents?taskId=list-b', { headers: as(token) });
    expect((byTask.body as { agents: Array<{ agentId: string }> }).agents.map((agent) => agent.agentId)).toEqual([
      ids[1],
    ]);

    const foreign = await request(instance.baseUrl, 'GET', '/agents?taskId=list-b', { headers: as(otherToken) });
    expect((foreign.body as { agents: unknown[] }).agents).toEqual([]);

    for (const query of [
      'state=sleeping',
      'limit=0',
      'limit=1000',
      'cursor=%%%',
      'cursor=bm90LWEtY3Vyc29y',
      'unknown=1',
    ]) {
      const bad = await request(instance.baseUrl, 'GET', `/agents?${query}`, { headers: as(token) });
      expect(bad.status).toBe(400);
      errorCode(bad);
    }
  });

  it('documents the agent endpoints in the OpenAPI document generated from the schemas', async () => {
    const document = await request(instance.baseUrl, 'GET', '/openapi.json');
    const paths = Object.keys((document.body as { paths: Record<string, unknown> }).paths);
    expect(paths).toEqual(
      expect.arrayContaining(['/agents/spawn', '/agents', '/agents/{agentId}/status', '/agents/{agentId}/kill']),
    );
  });
});
