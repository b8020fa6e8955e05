import { issueApiToken } from '../../api/auth';
import { callbackVerifier, CallbackTokenError } from '../../client/callback-receiver';
import { CallbackReceiver } from '../helpers/callback-receiver';
import { signCallbackToken } from '../../domain/sessions/callback-tokens';
import { byWorkItem, FakeAnthropic, reply, byTurn } from '../../scripts/scripted-model-server';
import { sessionCallbacksWorkflowId } from '../../workflows/session-callbacks/contract';
import { recordHistoryIfRequested } from '../helpers/histories';
import { containersOf } from '../helpers/chaos';
import { createRepository } from '../helpers/git-repo';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { readSse } from '../helpers/sse';
import { waitUntil } from '../helpers/wait';

/**
 * Gateway sessions end to end: a real callback receiver on loopback that checks every token with the
 * shipped helper, the event stream read and resumed mid-run, and the attacks a receiver must refuse.
 */
const model = new FakeAnthropic(
  byWorkItem({
    'two steps': byTurn([
      reply.toolUse({ name: 'bash', input: { command: 'sleep 2; echo one' } }),
      reply.toolUse({ name: 'bash', input: { command: 'sleep 1; exit 4' } }),
      reply.text('Done in two steps.'),
    ]),
    'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
  }),
);

describe('gateway sessions, callbacks and the event stream', () => {
  let instance: TestInstance;
  let token: string;
  let otherToken: string;
  let repository: string;
  const audience = 'https://gateway.example.test';
  const receiver = new CallbackReceiver(() => callbackVerifier({ orchestratorUrl: instance.baseUrl, audience }));

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ ANTHROPIC_API_KEY: 'session-key', ANTHROPIC_BASE_URL: model.url });
    ({ token } = await issueApiToken(instance.prisma, `gw-${Date.now()}`));
    ({ token: otherToken } = await issueApiToken(instance.prisma, `gw-other-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Gateway\n' });
    await receiver.start();
  });
  afterAll(async () => {
    await receiver.stop();
    await instance.stop();
    await model.stop();
  });

  const auth = (bearer = token): Record<string, string> => ({ authorization: `Bearer ${bearer}` });
  const spawnBody = (id: string, workItem: string, extra: Record<string, unknown> = {}) => ({
    task: {
      id,
      title: `Task ${id}`,
      description: 'From the gateway',
      repository,
      branch: 'main',
      workItems: [workItem],
      acceptanceCriteria: ['It works'],
      labels: ['backend'],
      priority: 'high',
    },
    context: { agentType: 'worker', options: { maxRetries: 1 } },
    callback_url: receiver.url,
    callback_audience: audience,
    ...extra,
  });
  const spawn = async (id: string, workItem: string): Promise<string> => {
    const response = await request(instance.baseUrl, 'POST', '/orchestrator/sessions/spawn', {
      headers: auth(),
      json: spawnBody(id, workItem),
    });
    expect(response.status).toBe(202);
    return (response.body as { sessionId: string }).sessionId;
  };

  it(
    'runs a session from a task, reports every lifecycle change to the ' +
      'callback in order, and the stream resumes without gaps',
    async () => {
      const sessionId = await spawn('gw-1', 'two steps');
      // The task became the agent's context: its work item, and its text as instructions.
      const agent = await instance.prisma.agent.findUniqueOrThrow({ where: { id: sessionId } });
      expect(agent.context).toMatchObject({
        workItems: ['two steps'],
        instructions: expect.stringContaining('Acceptance criteria:\n- It works') as unknown,
      });

      // Read the stream until the first tool call ended, drop the connection, and resume from the last id.
      const first = await readSse(`${instance.baseUrl}/agents/${sessionId}/events`, auth(), 4);
      expect(first.ended).toBe(false);
      const lastId = first.events.at(-1)?.id ?? '0';
      const rest = await readSse(`${instance.baseUrl}/orchestrator/sessions/${sessionId}/events`, {
        ...auth(),
        'last-event-id': lastId,
      });
      expect(rest.ended).toBe(true);
      const streamed = [...first.events, ...rest.events];
      // no gap, nothing twice
      expect(streamed.map((event) => Number(event.id))).toEqual(streamed.map((_event, index) => index + 1));
      const parsed = streamed.map((event) => JSON.parse(event.data) as { type: string; data: Record<string, unknown> });
      expect(parsed.at(-1)).toMatchObject({ type: 'state', data: { state: 'completed' } });
      expect(parsed.filter((event) => event.type === 'tool').map((event) => event.data.exitCode)).toEqual([0, 4]);
      expect(parsed.filter((event) => event.type === 'turn')).toHaveLength(3);
      expect(parsed.some((event) => event.type === 'result')).toBe(true);

      // Every event reached the receiver, in order, each with a token the helper accepted.
      await waitUntil(() => Promise.resolve(receiver.eventsOf(sessionId).at(-1)?.data.state === 'completed'), 30_000);
      const delivered = receiver.eventsOf(sessionId);
      expect(delivered.map((event) => event.sequence)).toEqual(streamed.map((event) => Number(event.id)));
      expect(delivered.map((event) => event.type)).toEqual(parsed.map((event) => event.type));
      expect(receiver.refusals).toEqual([]);
      await instance.temporal.workflow.getHandle(sessionCallbacksWorkflowId(sessionId)).result();
      await recordHistoryIfRequested(sessionCallbacksWorkflowId(sessionId), 'session-callbacks-completed');

      const status = await request(instance.baseUrl, 'GET', `/orchestrator/sessions/${sessionId}/status`, {
        headers: auth(),
      });
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({
        sessionId,
        state: 'completed',
        task: { id: 'gw-1' },
        callback: { url: receiver.url, audience, deliveredSequence: delivered.length },
      });
      const list = await request(instance.baseUrl, 'GET', '/orchestrator/sessions', { headers: auth() });
      expect(
        (list.body as { sessions: Array<{ sessionId: string }> }).sessions.map((session) => session.sessionId),
      ).toContain(sessionId);
    },
  );

  it(
    'keeps retrying while the receiver is down and delivers everything once ' +
      'it is back; a kill ends the session within seconds',
    async () => {
      receiver.down = true;
      const sessionId = await spawn('gw-2', 'sleep long');
      await waitUntil(
        async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: sessionId } })).lastTool === 'bash',
        60_000,
      );
      await waitUntil(() => Promise.resolve(receiver.attemptsWhileDown >= 2), 30_000);
      expect(receiver.eventsOf(sessionId)).toEqual([]);

      const killedAt = Date.now();
      expect(
        (await request(instance.baseUrl, 'POST', `/orchestrator/sessions/${sessionId}/kill`, { headers: auth() }))
          .status,
      ).toBe(202);
      await waitUntil(async () => (await containersOf(instance.docker, sessionId)) === 0, 20_000, 100);
      expect(Date.now() - killedAt).toBeLessThan(20_000);
      receiver.down = false;
      await waitUntil(() => Promise.resolve(receiver.eventsOf(sessionId).at(-1)?.data.state === 'killed'), 90_000, 250);
      const delivered = receiver.eventsOf(sessionId);
      expect(delivered.map((event) => event.sequence)).toEqual(delivered.map((_event, index) => index + 1));
      expect(delivered[0]).toMatchObject({ type: 'state', data: { state: 'spawning' } });
    },
  );

  it(
    'refuses tokens of another session, expired, tampered, for another ' +
      'audience or another event (after accepting the valid one)',
    async () => {
      const sessionA = await instance.prisma.session.findFirstOrThrow({
        where: { task: { path: ['id'], equals: 'gw-1' } },
      });
      const sessionB = await instance.prisma.session.findFirstOrThrow({
        where: { task: { path: ['id'], equals: 'gw-2' } },
      });
      const verify = callbackVerifier({ orchestratorUrl: instance.baseUrl, audience });
      const identity = instance.identity.current();
      const claims = { sessionId: sessionA.agentId, audience, eventId: `${sessionA.agentId}:1`, sequence: 1 };
      const valid = await signCallbackToken(identity, claims);
      await expect(verify(`Bearer ${valid}`, sessionA.agentId, claims.eventId)).resolves.toMatchObject({
        sub: sessionA.agentId,
        seq: 1,
      });

      const reason = async (authorization: string | undefined, sessionId: string, eventId: string): Promise<string> =>
        verify(authorization, sessionId, eventId).then(
          () => 'accepted',
          (error: unknown) => (error instanceof CallbackTokenError ? error.reason : String(error)),
        );
      expect(await reason(`Bearer ${valid}`, sessionB.agentId, `${sessionB.agentId}:1`)).toBe('wrong_session');
      expect(await reason(`Bearer ${valid}`, sessionA.agentId, `${sessionA.agentId}:2`)).toBe('wrong_event');
      const expired = await signCallbackToken(identity, claims, new Date(Date.now() - 3600_000));
      expect(await reason(`Bearer ${expired}`, sessionA.agentId, claims.eventId)).toBe('expired');
      const [header, payload, signature] = valid.split('.') as [string, string, string];
      const forged = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: sessionB.agentId }),
      ).toString('base64url');
      expect(await reason(`Bearer ${header}.${forged}.${signature}`, sessionB.agentId, claims.eventId)).toBe(
        'bad_signature',
      );
      const otherAudience = await signCallbackToken(identity, { ...claims, audience: 'https://someone-else.test' });
      expect(await reason(`Bearer ${otherAudience}`, sessionA.agentId, claims.eventId)).toBe('wrong_audience');
      expect(await reason(undefined, sessionA.agentId, claims.eventId)).toBe('missing_token');
    },
  );

  it(
    'refuses bad spawns with a JSON error naming the field, starts nothing, ' + 'and keeps sessions to their workspace',
    async () => {
      const before = await instance.prisma.agent.count();
      const badBranch = await request(instance.baseUrl, 'POST', '/orchestrator/sessions/spawn', {
        headers: auth(),
        json: { ...spawnBody('gw-bad', 'x'), task: { ...spawnBody('gw-bad', 'x').task, branch: '../etc' } },
      });
      expect(badBranch.status).toBe(400);
      expect((badBranch.body as { error: { message: string } }).error.message).toContain('task.branch');
      const noTitle = await request(instance.baseUrl, 'POST', '/orchestrator/sessions/spawn', {
        headers: auth(),
        json: { task: { id: 'gw-bad', repository, branch: 'main' } },
      });
      expect(noTitle.status).toBe(400);
      expect((noTitle.body as { error: { message: string } }).error.message).toContain('task.title');
      const metadataCallback = await request(instance.baseUrl, 'POST', '/orchestrator/sessions/spawn', {
        headers: auth(),
        json: spawnBody('gw-bad', 'x', { callback_url: 'http://169.254.169.254/latest' }),
      });
      expect(metadataCallback.status).toBe(400);
      expect(errorCode(metadataCallback)).toBe('callback_url_refused');
      expect(await instance.prisma.agent.count()).toBe(before);

      const sessionA = await instance.prisma.session.findFirstOrThrow({
        where: { task: { path: ['id'], equals: 'gw-1' } },
      });
      expect(
        (
          await request(instance.baseUrl, 'GET', `/orchestrator/sessions/${sessionA.agentId}/status`, {
            headers: auth(otherToken),
          })
        ).status,
      ).toBe(403);
      expect(
        (
          await request(instance.baseUrl, 'POST', `/orchestrator/sessions/${sessionA.agentId}/kill`, {
            headers: auth(otherToken),
          })
        ).status,
      ).toBe(403);
      expect(
        (await readSse(`${instance.baseUrl}/orchestrator/sessions/${sessionA.agentId}/events`, auth(otherToken)))
          .status,
      ).toBe(403);
      expect(
        (await request(instance.baseUrl, 'GET', '/orchestrator/sessions', { headers: auth(otherToken) })).body,
      ).toEqual({ sessions: [] });
      const badResume = await request(instance.baseUrl, 'GET', `/agents/${sessionA.agentId}/events`, {
        headers: { ...auth(), 'last-event-id': 'x' },
      });
      expect(badResume.status).toBe(400);
      expect(errorCode(badResume)).toBe('invalid_last_event_id');
    },
  );

  it('answers the gateway health check with each dependency', async () => {
    const health = await request(instance.baseUrl, 'GET', '/orchestrator/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok', temporal: 'up', database: 'up', docker: 'up' });
  });
});
