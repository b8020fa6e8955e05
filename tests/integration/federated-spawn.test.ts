import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { AGENT_LABEL } from '../../sandbox-runtime/agent-containers';
import { INCOMING_COMMAND_PATH, INCOMING_EVENT_PATH, verifyReply } from '../../federation/client';
import { createIdentityHolder, signingKey, type InstanceKey } from '../../federation/identity';
import { signRequest } from '../../federation/messages';
import { byTurn, byWorkItem, FakeAnthropic, reply, type Script, EDITOR } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import type { FederatedAgentStatus } from '../../workflows/federated-spawn/contract';
import {
  bearer,
  federatedSpawnBody,
  linkInstances,
  spawnedAgentId,
  spawnThroughHub,
  type Link,
} from '../helpers/federation';
import { createRepository, git } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { errorCode, request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { readSse } from '../helpers/sse';
import { waitUntil } from '../helpers/wait';

/**
 * A hub runs agents on a spoke: two real instances on loopback, each with its own API, worker,
 * database and task queue. The hub's poll interval is five minutes here, so everything it learns
 * while an agent runs comes from the spoke's signed events.
 */
const scripts: Record<string, Script> = {
  'write hello': byTurn([
    reply.toolUse({
      name: EDITOR,
      input: { command: 'create', path: 'hello.txt', file_text: 'hello from the spoke\n' },
    }),
    reply.toolUse({ name: 'bash', input: { command: 'sleep 2; cat hello.txt' } }),
    reply.text('Wrote hello.txt on the spoke.'),
  ]),
  'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
  'push from the spoke': byTurn([
    reply.toolUse({ name: 'bash', input: { command: 'echo pushed > pushed.txt; git push 2>/dev/null || true' } }),
    reply.text('Pushed, as approved.'),
  ]),
};
const model = new FakeAnthropic(byWorkItem(scripts));

describe('agents run on a peer instance (federatedSpawn)', () => {
  let hub: TestInstance;
  let spoke: TestInstance;
  let link: Link;
  let repository: string;
  let otherHubToken: string;

  beforeAll(async () => {
    await model.start();
    hub = await startTestInstance({ FEDERATION_POLL_INTERVAL: '300' });
    spoke = await startTestInstance({ ANTHROPIC_API_KEY: 'spoke-key', ANTHROPIC_BASE_URL: model.url });
    link = await linkInstances(hub, spoke);
    otherHubToken = (await issueApiToken(hub.prisma, `other-${Date.now()}`)).token;
    repository = await createRepository({ 'README.md': '# Federated\n' });
  });
  afterAll(async () => {
    await hub.stop();
    await spoke.stop();
    await model.stop();
  });

  const spawnOnSpoke = (taskId: string, workItem: string): Promise<JsonResponse> =>
    spawnThroughHub(hub, link, { taskId, repository, workItem });
  const hubStatus = async (agentId: string, token = link.hubToken) =>
    request(hub.baseUrl, 'GET', `/api/v1/federation/agents/${agentId}/status`, { headers: bearer(token) });
  const statusData = async (agentId: string) =>
    ((await hubStatus(agentId)).body as { data: Record<string, unknown> & { status: string } }).data;
  const remoteAgentOf = async (agentId: string): Promise<string> => {
    await waitUntil(
      async () => (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId !== null,
      20_000,
    );
    return (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId ?? '';
  };

  it('runs an agent on the spoke, follows it by its signed events, and brings the result back to the hub', async () => {
    const response = await spawnOnSpoke('fed-happy', 'write hello');
    expect(response.status).toBe(202);
    const { data } = response.body as { success: boolean; data: { agentId: string; state: string; spawnedAt: string } };
    expect(response.body).toMatchObject({ success: true, data: { state: 'spawning' } });
    expect(new Date(data.spawnedAt).getTime()).not.toBeNaN();
    const { agentId } = data;

    // Progress while it runs: the tool of turn 2 sleeps, long enough to see the mirrored state.
    await waitUntil(async () => {
      const live = await statusData(agentId);
      return live.status === 'running' && ((live.progress as { turn: number } | null)?.turn ?? 0) >= 2;
    }, 20_000);
    const running = await statusData(agentId);
    expect(running).toMatchObject({
      status: 'running',
      following: 'following',
      remoteInstance: { instanceId: spoke.identity.current().instanceId, connectionId: link.hubConnectionId },
    });
    expect(running.lastContactAt).toEqual(expect.any(String));
    expect(running.startedAt).toEqual(expect.any(String));

    const final = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
    expect(final.state).toBe('completed');
    await recordHistoryIfRequested(agentId, 'federated-spawn-completed');
    const done = await statusData(agentId);
    expect(done).toMatchObject({
      status: 'completed',
      following: 'ended',
      result: { summary: 'Wrote hello.txt on the spoke.' },
    });
    expect((done.result as { diff: string }).diff).toContain('+hello from the spoke');
    expect((done.result as { commitSha: string | null }).commitSha).toMatch(/^[0-9a-f]{40}$/);

    // One agent on the spoke, spawned by this hub's message, and it is the one the hub followed.
    const remote = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
    const onSpoke = await spoke.prisma.agent.findMany({ where: { originMessageId: remote.spawnMessageId } });
    expect(onSpoke.map((row) => [row.id, row.state, row.originConnectionId])).toEqual([
      [remote.remoteAgentId, 'completed', link.spokeConnectionId],
    ]);
    await recordHistoryIfRequested(`${remote.remoteAgentId ?? ''}-hub-events`, 'hub-event-delivery-completed');
    await recordHistoryIfRequested(remote.remoteAgentId ?? '', 'agent-run-for-hub');

    // Events did the following: the spoke was asked once, for the result, after its terminal event.
    const asked = await spoke.prisma.federationCommand.findMany({
      where: {
        connectionId: link.spokeConnectionId,
        direction: 'inbound',
        commandType: 'agent.status',
        payload: { equals: { agentId: remote.remoteAgentId } },
      },
    });
    expect(asked).toHaveLength(1);
    const events = await hub.prisma.federationEvent.findMany({ where: { agentId }, orderBy: { sequence: 'asc' } });
    expect(events.map((event) => event.state)).toEqual(expect.arrayContaining(['running', 'completed']));
    const listed = await request(hub.baseUrl, 'GET', '/api/v1/federation/events', { headers: bearer(link.hubToken) });
    expect((listed.body as { events: Array<{ id: string }> }).events.map((event) => event.id)).toEqual(
      expect.arrayContaining(events.map((event) => event.id)),
    );
    const foreign = await request(hub.baseUrl, 'GET', '/api/v1/federation/events', { headers: bearer(otherHubToken) });
    expect(foreign.body).toEqual({ events: [] });
    expect(events.every((event) => event.status === 'accepted')).toBe(true);
    expect(events.map((event) => event.sequence)).toEqual(
      [...events.map((event) => event.sequence)].sort((a, b) => (a ?? 0) - (b ?? 0)),
    );

    // The hub's workflow shows each step: send the spawn, verify the signed reply, then follow.
    const history = await hub.temporal.workflow.getHandle(agentId).fetchHistory();
    const activities = (history.events ?? [])
      .map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    expect(activities.slice(0, 3)).toEqual(['sendCommand', 'verifyCommandReply', 'recordRemoteAgent']);

    // The agent is listed with the hub's other agents, with its remote instance.
    const agents = await request(hub.baseUrl, 'GET', '/agents', { headers: bearer(link.hubToken) });
    const entry = (agents.body as { agents: Array<{ agentId: string }> }).agents.find(
      (agent) => agent.agentId === agentId,
    );
    expect(entry).toMatchObject({
      state: 'completed',
      remoteAgentId: remote.remoteAgentId,
      remoteInstance: { instanceId: spoke.identity.current().instanceId, connectionId: link.hubConnectionId },
    });
    const local = await request(hub.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: bearer(link.hubToken) });
    expect(local.body).toMatchObject({
      state: 'completed',
      turn: 3,
      result: { summary: 'Wrote hello.txt on the spoke.' },
    });
    // The spoke's cost estimate comes back with the result: the hub shows what the spoke says the run cost.
    const spokeRow = await spoke.prisma.agent.findUniqueOrThrow({ where: { id: remote.remoteAgentId ?? '' } });
    expect(spokeRow.costUsd).toBeGreaterThan(0);
    expect(local.body).toMatchObject({ costUsd: spokeRow.costUsd, result: { costUsd: spokeRow.costUsd } });

    // The hub's event stream of the federated agent: its mirrored states and the result, numbered without gaps, ending
    // with the final state.
    const stream = await readSse(`${hub.baseUrl}/agents/${agentId}/events`, bearer(link.hubToken));
    expect(stream.ended).toBe(true);
    expect(stream.events.map((event) => Number(event.id))).toEqual(stream.events.map((_event, index) => index + 1));
    const streamed = stream.events.map((event) => JSON.parse(event.data) as { type: string; data: { state?: string } });
    expect(streamed.filter((event) => event.type === 'state').map((event) => event.data.state)).toEqual([
      'spawning',
      'running',
      'completed',
    ]);
    expect(streamed.map((event) => event.type)).toContain('result');
  });

  it('kills an agent in the middle of a tool from the hub: the spoke’s container is gone within seconds', async () => {
    const agentId = spawnedAgentId(await spawnOnSpoke('fed-kill', 'sleep long'));
    const remoteAgentId = await remoteAgentOf(agentId);
    await waitUntil(
      async () =>
        (await spoke.prisma.toolCall.findFirst({ where: { agentId: remoteAgentId, status: 'started' } })) !== null,
      20_000,
    );

    const killed = await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, {
      headers: bearer(link.hubToken),
    });
    expect(killed.status).toBe(202);
    expect(killed.body).toEqual({ success: true, data: { agentId, state: 'killing' } });
    const askedAt = Date.now();
    const containers = async () =>
      (await spoke.docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${remoteAgentId}`] } }))
        .length;
    await waitUntil(async () => (await containers()) === 0, 15_000);
    expect(await containers()).toBe(0);
    expect(Date.now() - askedAt).toBeLessThan(15_000);

    expect(((await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus).state).toBe('killed');
    expect(((await spoke.temporal.workflow.getHandle(remoteAgentId).result()) as AgentStatus).state).toBe('killed');
    await recordHistoryIfRequested(agentId, 'federated-spawn-killed');
    const data = await statusData(agentId);
    expect(data).toMatchObject({ status: 'killed', kill: { reason: 'killed through the hub API' } });
    expect((data.kill as { deliveredAt: string | null }).deliveredAt).not.toBeNull();
    const again = await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, {
      headers: bearer(link.hubToken),
    });
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe('already_finished');
  });

  it('steers an agent on the spoke from the hub: its waiting call reaches the hub, which approves it', async () => {
    const body = federatedSpawnBody(link.hubConnectionId, 'fed-steer', repository, 'push from the spoke', {
      approvals: [{ tool: 'bash', match: 'git push' }],
    });
    const spawned = await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
      headers: bearer(link.hubToken),
      json: body,
    });
    const agentId = spawnedAgentId(spawned);
    const remoteAgentId = await remoteAgentOf(agentId);
    const hubView = async () =>
      (await request(hub.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: bearer(link.hubToken) }))
        .body as Record<string, unknown> & { pendingApproval?: { toolCallId: string; label: string } | null };
    // The spoke's input_required, with the call it waits on, reaches the hub's status and its event stream.
    await waitUntil(async () => (await hubView()).state === 'input_required', 30_000, 200);
    const { pendingApproval } = await hubView();
    expect(pendingApproval?.label).toContain('git push');
    // The hub's mirror answers the status at once; its event log follows once the state is recorded.
    const hubStates = async (): Promise<string[]> =>
      (await hub.prisma.agentEvent.findMany({ where: { agentId, type: 'state' } })).map(
        (event) => (event.data as { state: string }).state,
      );
    await waitUntil(async () => (await hubStates()).includes('input_required'), 20_000, 100);

    // Refused on the hub before anything is sent: another workspace, a bad body. Refused by the spoke: a call that
    // does not wait. Nothing is decided by any of them.
    const steer = (pathname: string, json: unknown, token = link.hubToken) =>
      request(hub.baseUrl, 'POST', `/agents/${agentId}${pathname}`, { headers: bearer(token), json });
    expect((await steer('/messages', { text: 'hi' }, otherHubToken)).status).toBe(403);
    expect((await steer(`/approvals/${pendingApproval!.toolCallId}`, { decision: 'later' })).status).toBe(400);
    const notWaiting = await steer('/approvals/toolu_not_waiting', { decision: 'approve' });
    expect([notWaiting.status, errorCode(notWaiting)]).toEqual([404, 'not_waiting']);
    expect((await spoke.prisma.agent.findUniqueOrThrow({ where: { id: remoteAgentId } })).state).toBe('input_required');

    // The valid requests: a message and the approval, each a signed command the spoke's run takes.
    const said = await steer('/messages', { text: 'Say which branch you pushed.' });
    expect([said.status, said.body]).toEqual([202, { agentId, position: 1 }]);
    const approved = await steer(`/approvals/${pendingApproval!.toolCallId}`, { decision: 'approve' });
    expect([approved.status, approved.body]).toEqual([
      200,
      { agentId, toolCallId: pendingApproval!.toolCallId, decision: 'approve' },
    ]);
    expect(((await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus).state).toBe('completed');
    const next = model.requestsOf('push from the spoke').find((recorded) => recorded.turn === 1);
    expect(JSON.stringify(next?.body.messages.at(-1))).toContain('Say which branch you pushed.');
    const calls = await spoke.prisma.toolCall.findMany({ where: { agentId: remoteAgentId } });
    expect(calls.map((call) => [call.status, call.isError])).toEqual([['finished', false]]);
    const late = await steer('/pause', undefined);
    expect([late.status, errorCode(late)]).toEqual([409, 'already_finished']);
  });

  it('accepts FED-010’s agent.spawn and agent.status payloads byte for byte, and answers in its shapes', async () => {
    const seedPayload =
      '{"taskId":"task-123","agentType":"worker",' +
      '"context":{"repository":"git.example.com/org/repo","branch":"feature-branch",' +
      '"workItems":["item-1","item-2"],"instructions":"Task instructions..."},' +
      '"options":{"timeout":3600000,"maxRetries":3}}';
    const send = async (
      commandType: string,
      payload: string,
    ): Promise<{ status: string; result: Record<string, unknown> }> => {
      const identity = hub.identity.current();
      const messageId = randomUUID();
      const nonce = randomUUID().replace(/-/g, '');
      const body = Buffer.from(
        `{"messageId":"${messageId}","instanceId":"${identity.instanceId}","commandType":"${commandType}",` +
          `"payload":${payload},"timestamp":"${new Date().toISOString()}","nonce":"${nonce}"}`,
      );
      const url = `${spoke.baseUrl}${INCOMING_COMMAND_PATH}`;
      const response = await fetch(url, {
        method: 'POST',
        headers: signRequest(url, body, signingKey(identity)).headers,
        body,
      });
      const raw = {
        status: response.status,
        headers: Object.fromEntries(response.headers.entries()),
        body: Buffer.from(await response.arrayBuffer()),
      };
      const keys = await hub.prisma.federationPeerKey.findMany({ where: { connectionId: link.hubConnectionId } });
      return verifyReply(raw, keys, { messageId, nonce, instanceId: spoke.identity.current().instanceId }) as {
        status: string;
        result: Record<string, unknown>;
      };
    };

    const spawnReply = await send('agent.spawn', seedPayload);
    expect(spawnReply.status).toBe('ok');
    expect(Object.keys(spawnReply.result).sort()).toEqual(['agentId', 'existing', 'spawnedAt', 'state']);
    expect(spawnReply.result.agentId).toMatch(/^agent-/);
    expect(['spawning', 'queued']).toContain(spawnReply.result.state);
    const agentId = spawnReply.result.agentId as string;
    const row = await spoke.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row).toMatchObject({ taskId: 'task-123', agentType: 'worker', originConnectionId: link.spokeConnectionId });
    expect(row.context).toEqual({
      repository: 'git.example.com/org/repo',
      branch: 'feature-branch',
      workItems: ['item-1', 'item-2'],
      instructions: 'Task instructions...',
    });
    // milliseconds on the wire, seconds in the agent
    expect(row.options).toMatchObject({ timeout: 3600, maxRetries: 3 });

    const statusReply = await send('agent.status', `{"agentId":"${agentId}"}`);
    expect(statusReply.status).toBe('ok');
    expect(statusReply.result).toMatchObject({ agentId, taskId: 'task-123', spawnedAt: row.createdAt.toISOString() });
    expect(typeof (statusReply.result.progress as { turn: unknown }).turn).toBe('number');
    expect(Object.keys(statusReply.result)).toEqual(
      expect.arrayContaining(['agentId', 'taskId', 'status', 'spawnedAt', 'startedAt', 'progress']),
    );
    // A cost budget the spoke cannot enforce (no price for the model there) is refused, and nothing starts.
    const spokeAgents = await spoke.prisma.agent.count();
    const unpriced = seedPayload
      .replace('"task-123"', '"task-unpriced"')
      .replace('"maxRetries":3}', '"maxRetries":3,"model":"unknown-model","costBudgetUsd":5}');
    const refusedReply = (await send('agent.spawn', unpriced)) as unknown as {
      status: string;
      error: { code: string; message: string };
    };
    expect(refusedReply).toMatchObject({ status: 'error', error: { code: 'unpriced_model' } });
    expect(refusedReply.error.message).toContain('no price is configured for model unknown-model');
    expect(await spoke.prisma.agent.count()).toBe(spokeAgents);

    // That repository does not exist here: the agent fails at its clone, and says so.
    expect(
      (
        (await spoke.temporal.workflow
          .getHandle(agentId)
          .result()
          .catch(() => null)) as AgentStatus | null
      )?.state ?? 'failed',
    ).toBe('failed');
    await waitUntil(
      async () => (await spoke.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state === 'failed',
    );
    expect((await spoke.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).error).toMatch(
      /cannot clone git\.example\.com\/org\/repo/,
    );
  });

  it('refuses bad spawns on the hub with a JSON error, and starts nothing on either side', async () => {
    const snapshot = async () => ({
      hubAgents: await hub.prisma.agent.count({ where: { workspaceId: link.hubWorkspaceId } }),
      hubWorkflows: (
        await hub.temporal.workflow.count(`TaskQueue = "${hub.taskQueue}" AND WorkflowType = "federatedSpawn"`)
      ).count,
      spokeAgents: await spoke.prisma.agent.count({ where: { workspaceId: link.spokeWorkspaceId } }),
    });
    const valid = federatedSpawnBody(link.hubConnectionId, 'fed-bad', repository);
    const cases: Array<[string, () => Promise<JsonResponse>, number, string]> = [
      [
        'no token',
        () => request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', { json: valid }),
        401,
        'unauthorized',
      ],
      [
        'no connectionId',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(link.hubToken),
            json: { ...valid, connectionId: undefined },
          }),
        400,
        'validation_failed',
      ],
      [
        'an unknown connection',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(link.hubToken),
            json: { ...valid, connectionId: randomUUID() },
          }),
        404,
        'not_found',
      ],
      [
        'another workspace’s connection',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(otherHubToken),
            json: valid,
          }),
        403,
        'forbidden',
      ],
      [
        'a timeout under a second (milliseconds)',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(link.hubToken),
            json: { ...valid, options: { timeout: 999 } },
          }),
        400,
        'validation_failed',
      ],
      [
        'an unknown option',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(link.hubToken),
            json: { ...valid, options: { sudo: true } },
          }),
        400,
        'validation_failed',
      ],
      [
        'an unknown agent type',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: bearer(link.hubToken),
            json: { ...valid, agentType: 'admin' },
          }),
        400,
        'validation_failed',
      ],
      [
        'malformed JSON',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
            headers: { ...bearer(link.hubToken), 'content-type': 'application/json' },
            rawBody: '{"connectionId": ',
          }),
        400,
        'invalid_json',
      ],
      [
        'a spawn through the generic command endpoint',
        () =>
          request(hub.baseUrl, 'POST', '/api/v1/federation/command', {
            headers: bearer(link.hubToken),
            json: { connectionId: link.hubConnectionId, commandType: 'agent.spawn', payload: valid },
          }),
        400,
        'use_federated_spawn',
      ],
    ];
    // The valid twin passes first.
    const twin = spawnedAgentId(
      await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
        headers: bearer(link.hubToken),
        json: valid,
      }),
    );
    expect(((await hub.temporal.workflow.getHandle(twin).result()) as FederatedAgentStatus).state).toBe('completed');
    for (const [name, send, status, code] of cases) {
      const before = await snapshot();
      const response = await send();
      expect([name, response.status, errorCode(response)]).toEqual([name, status, code]);
      expect(await snapshot()).toEqual(before);
    }

    // A connection that is not ACTIVE takes no spawn.
    await request(hub.baseUrl, 'POST', `/api/v1/federation/connections/${link.hubConnectionId}/suspend`, {
      headers: bearer(link.hubToken),
    });
    try {
      const before = await snapshot();
      const refused = await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
        headers: bearer(link.hubToken),
        json: { ...valid, taskId: 'fed-suspended' },
      });
      expect([refused.status, errorCode(refused)]).toEqual([409, 'connection_not_active']);
      expect(await snapshot()).toEqual(before);
    } finally {
      await request(hub.baseUrl, 'POST', `/api/v1/federation/connections/${link.hubConnectionId}/resume`, {
        headers: bearer(link.hubToken),
      });
    }
  });

  it('answers status and kill only for the workspace’s agents that run on a peer', async () => {
    const federated = spawnedAgentId(await spawnOnSpoke('fed-owner', 'just finish'));
    await hub.temporal.workflow.getHandle(federated).result();
    const localAgent = await request(hub.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(link.hubToken),
      json: { taskId: 'local-one', agentType: 'worker', context: { repository, branch: 'main', workItems: ['x'] } },
    });
    const localId = (localAgent.body as { agentId: string }).agentId;

    expect((await hubStatus(federated)).status).toBe(200);
    const cases: Array<[JsonResponse, number, string]> = [
      [await hubStatus(`agent-${randomUUID()}`), 404, 'not_found'],
      [await hubStatus(localId), 404, 'not_found'],
      [await hubStatus(federated, otherHubToken), 403, 'forbidden'],
      [await hubStatus('agent-not-an-id'), 400, 'invalid_parameter'],
      [
        await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${federated}/kill`, {
          headers: bearer(otherHubToken),
        }),
        403,
        'forbidden',
      ],
      [
        await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${federated}/kill`, {
          headers: bearer(link.hubToken),
        }),
        409,
        'already_finished',
      ],
    ];
    for (const [response, status, code] of cases)
      expect([response.status, errorCode(response)]).toEqual([status, code]);
  });

  it('lets a hub see and kill only the agents it spawned through its own connection', async () => {
    // An agent the spoke runs for itself, in the very workspace the connection belongs to.
    const own = await request(spoke.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(link.spokeToken),
      json: {
        taskId: 'spoke-own',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['sleep long'] },
      },
    });
    const spokeOwn = (own.body as { agentId: string }).agentId;
    await waitUntil(
      async () => (await spoke.prisma.agent.findUniqueOrThrow({ where: { id: spokeOwn } })).state === 'running',
      20_000,
    );
    const command = (commandType: string, agentId: string) =>
      request(hub.baseUrl, 'POST', '/api/v1/federation/command', {
        headers: bearer(link.hubToken),
        json: { connectionId: link.hubConnectionId, commandType, payload: { agentId } },
      });

    // The valid twin: an agent the hub spawned is answered.
    const federated = spawnedAgentId(await spawnOnSpoke('fed-own-twin', 'just finish'));
    await hub.temporal.workflow.getHandle(federated).result();
    const remoteAgentId = await remoteAgentOf(federated);
    const twin = await command('agent.status', remoteAgentId);
    expect(twin.body).toMatchObject({
      status: 'succeeded',
      reply: { status: 'ok', result: { agentId: remoteAgentId, status: 'completed' } },
    });
    await recordHistoryIfRequested(
      `federation-command-${(twin.body as { messageId: string }).messageId}`,
      'federation-command-status',
    );

    for (const commandType of ['agent.status', 'agent.kill', 'agent.pause', 'agent.resume']) {
      const refused = await command(commandType, spokeOwn);
      expect(refused.status).toBe(502);
      expect(refused.body).toMatchObject({
        status: 'failed',
        errorCode: 'not_found',
        reply: { status: 'error', error: { code: 'not_found' } },
      });
      expect(JSON.stringify(refused.body)).not.toContain('spoke-own'); // nothing about the agent leaks
    }
    expect((await spoke.prisma.agent.findUniqueOrThrow({ where: { id: spokeOwn } })).state).toBe('running');
    await request(spoke.baseUrl, 'POST', `/agents/${spokeOwn}/kill`, { headers: bearer(link.spokeToken) });
    expect(((await spoke.temporal.workflow.getHandle(spokeOwn).result()) as AgentStatus).state).toBe('killed');
  });

  it('serves the result bundle in pieces to the hub that spawned its agent (agent.result), no one else', async () => {
    const agentId = spawnedAgentId(await spawnOnSpoke('fed-result', 'write hello'));
    await hub.temporal.workflow.getHandle(agentId).result();
    const remoteAgentId = await remoteAgentOf(agentId);
    const stored = await spoke.prisma.agentResultBundle.findUniqueOrThrow({ where: { agentId: remoteAgentId } });
    const piece = (payload: Record<string, unknown>) =>
      request(hub.baseUrl, 'POST', '/api/v1/federation/command', {
        headers: bearer(link.hubToken),
        json: { connectionId: link.hubConnectionId, commandType: 'agent.result', payload },
      });

    // The connection may send agent.status, so it may read the result too: the whole bundle from offset 0, signed.
    const first = await piece({ agentId: remoteAgentId });
    expect(first.status).toBe(200);
    const result = (first.body as { reply: { result: { data: string } & Record<string, unknown> } }).reply.result;
    expect(result).toMatchObject({
      agentId: remoteAgentId,
      commitSha: stored.commitSha,
      sizeBytes: stored.sizeBytes,
      offset: 0,
    });
    const bundle = Buffer.from(result.data, 'base64');
    expect(bundle.equals(Buffer.from(stored.data))).toBe(true);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fed-result-'));
    await writeFile(path.join(dir, 'result.bundle'), bundle);
    await git(dir, 'clone', '--quiet', repository, 'clone');
    await git(path.join(dir, 'clone'), 'fetch', '--quiet', '../result.bundle', `agent/${remoteAgentId}:result`);
    expect(await git(path.join(dir, 'clone'), 'show', 'result:hello.txt')).toBe('hello from the spoke');
    const past = await piece({ agentId: remoteAgentId, offset: stored.sizeBytes });
    expect((past.body as { reply: { result: { data: string } } }).reply.result.data).toBe('');

    // The spoke's own agent is not found; a bad offset or field is an invalid payload; nothing leaks.
    const own = await request(spoke.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(link.spokeToken),
      json: {
        taskId: 'spoke-own-result',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['write hello'] },
      },
    });
    const spokeOwn = (own.body as { agentId: string }).agentId;
    await spoke.temporal.workflow.getHandle(spokeOwn).result();
    for (const [payload, code] of [
      [{ agentId: spokeOwn }, 'not_found'],
      [{ agentId: remoteAgentId, offset: -1 }, 'invalid_payload'],
      [{ agentId: remoteAgentId, path: '/etc/passwd' }, 'invalid_payload'],
    ] as const) {
      const refused = await piece(payload);
      expect(refused.body).toMatchObject({ status: 'failed', errorCode: code });
      expect(JSON.stringify(refused.body)).not.toContain('hello from the spoke');
    }

    // A connection that may not read statuses may not read results either.
    const connection = { id: link.spokeConnectionId };
    await spoke.prisma.federationConnection.update({
      where: connection,
      data: { allowedCommandTypes: ['agent.spawn'] },
    });
    try {
      const refused = await piece({ agentId: remoteAgentId });
      expect(refused.status).toBe(502);
      expect(JSON.stringify(refused.body)).toContain('command_not_allowed');
    } finally {
      await spoke.prisma.federationConnection.update({
        where: connection,
        data: { allowedCommandTypes: ['agent.spawn', 'agent.status', 'agent.kill'] },
      });
    }
  });

  it("brings a completed agent's commit to the hub: served by its own result.bundle, pushed by the hub", async () => {
    const body = { ...federatedSpawnBody(link.hubConnectionId, 'fed-bring', repository, 'write hello') };
    const spawned = await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
      headers: bearer(link.hubToken),
      json: { ...body, delivery: { push: true } },
    });
    const agentId = spawnedAgentId(spawned);
    const final = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
    const remoteAgentId = await remoteAgentOf(agentId);
    const { commitSha } = await spoke.prisma.agentResult.findUniqueOrThrow({ where: { agentId: remoteAgentId } });
    expect(final).toMatchObject({
      state: 'completed',
      bundle: 'stored',
      delivery: { pushed: true, remote: repository, branch: `agent/${agentId}`, commit: commitSha },
    });
    // The spoke was never asked to push: the task's delivery stayed on the hub.
    const onSpoke = await spoke.prisma.agent.findUniqueOrThrow({ where: { id: remoteAgentId } });
    expect(onSpoke.options).not.toHaveProperty('delivery');

    // The hub's own bundle names the hub's agent, and plain git fetches the spoke's commit from it.
    const response = await fetch(`${hub.baseUrl}/agents/${agentId}/result.bundle`, { headers: bearer(link.hubToken) });
    expect(response.status).toBe(200);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fed-bring-'));
    await writeFile(path.join(dir, 'result.bundle'), Buffer.from(await response.arrayBuffer()));
    await git(dir, 'clone', '--quiet', repository, 'clone');
    await git(path.join(dir, 'clone'), 'fetch', '--quiet', '../result.bundle', `agent/${agentId}:result`);
    expect(await git(path.join(dir, 'clone'), 'rev-parse', 'result')).toBe(commitSha);
    // And the push landed it in the task's repository.
    expect(await git(repository, 'rev-parse', `agent/${agentId}`)).toBe(commitSha);
    const status = await hubStatus(agentId);
    expect((status.body as { data: { result: Record<string, unknown> } }).data.result).toMatchObject({
      bundle: 'stored',
      delivery: { pushed: true },
    });

    // A delivery the hub may not make, or cannot read, is refused before anything starts (the twin above passed).
    for (const [delivery, code] of [
      [{ push: true, remote: 'ssh://example.com/repo.git' }, 'repository_not_allowed'],
      [{ push: true, branch: '../main' }, 'validation_failed'],
      [{ push: true, force: true }, 'validation_failed'],
    ] as const) {
      const taskId = `fed-bring-bad-${Math.random().toString(36).slice(2)}`;
      const refused = await request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
        headers: bearer(link.hubToken),
        json: { ...federatedSpawnBody(link.hubConnectionId, taskId, repository, 'write hello'), delivery },
      });
      expect([refused.status, errorCode(refused)]).toEqual([400, code]);
      expect(await hub.prisma.agent.count({ where: { taskId } })).toBe(0);
    }
  });

  it('honours concurrent spawns from one hub, queued where the spoke is full, without duplicates', async () => {
    const tasks = ['fed-c1', 'fed-c2', 'fed-c3', 'fed-c4', 'fed-c5', 'fed-c5'];
    const responses = await Promise.all(tasks.map((taskId) => spawnOnSpoke(taskId, 'just finish')));
    const ids = responses.map((response) => (response.body as { data: { agentId: string } }).data.agentId);
    expect(responses.map((response) => response.status).sort()).toEqual([200, 202, 202, 202, 202, 202]);
    expect(ids[4]).toBe(ids[5]); // the same task twice is one agent
    const distinct = [...new Set(ids)];
    const finals = await Promise.all(
      distinct.map(async (id) => ((await hub.temporal.workflow.getHandle(id).result()) as FederatedAgentStatus).state),
    );
    expect(finals).toEqual(distinct.map(() => 'completed'));
    const messages = await hub.prisma.federatedAgent.findMany({ where: { agentId: { in: distinct } } });
    const onSpoke = await spoke.prisma.agent.findMany({
      where: { originMessageId: { in: messages.map((message) => message.spawnMessageId) } },
    });
    expect(onSpoke).toHaveLength(distinct.length);
    expect(new Set(onSpoke.map((row) => row.taskId))).toEqual(
      new Set(['fed-c1', 'fed-c2', 'fed-c3', 'fed-c4', 'fed-c5']),
    );
  });

  it('accepts lifecycle events only when the spoke signed them for an agent it runs for this hub', async () => {
    const agentId = spawnedAgentId(await spawnOnSpoke('fed-events', 'sleep long'));
    const remoteAgentId = await remoteAgentOf(agentId);
    await waitUntil(async () => (await statusData(agentId)).status === 'running', 20_000);
    const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
    const stranger = signingKey(
      createIdentityHolder({
        dataDir: await mkdtemp(path.join(os.tmpdir(), 'stranger-')),
        name: 'stranger',
        baseUrl: 'http://127.0.0.1:9',
      }).current(),
    );

    interface Crafted {
      body: Buffer;
      headers: Record<string, string>;
      eventId: string;
      nonce: string;
    }
    const craft = (
      changes: Record<string, unknown> = {},
      key: InstanceKey = signingKey(spoke.identity.current()),
    ): Crafted => {
      const eventId = randomUUID();
      const nonce = randomUUID().replace(/-/g, '');
      const payload = {
        agentId: remoteAgentId,
        spawnMessageId,
        sequence: 1,
        state: 'running',
        startedAt: new Date().toISOString(),
        progress: {
          turn: 1,
          lastTool: null,
          usage: { inputTokens: 1, outputTokens: 1 },
          updatedAt: new Date().toISOString(),
        },
        error: null,
        occurredAt: new Date().toISOString(),
        ...changes,
      };
      const body = Buffer.from(
        JSON.stringify({
          messageId: eventId,
          instanceId: spoke.identity.current().instanceId,
          eventType: 'agent.lifecycle',
          payload,
          timestamp: new Date().toISOString(),
          nonce,
        }),
      );
      return { body, headers: signRequest(`${hub.baseUrl}${INCOMING_EVENT_PATH}`, body, key).headers, eventId, nonce };
    };
    const send = (crafted: Crafted) =>
      request(hub.baseUrl, 'POST', INCOMING_EVENT_PATH, {
        rawBody: crafted.body.toString('utf8'),
        headers: crafted.headers,
      });
    const hubSide = async () => {
      const live = await statusData(agentId);
      return {
        status: live.status,
        error: live.error,
        row: (await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state,
      };
    };

    // The valid twin: a signed event (an old sequence, so it changes nothing) is acknowledged, signed.
    const twin = craft();
    const answered = await send(twin);
    expect(answered.status).toBe(200);
    const spokeKeys = await spoke.prisma.federationPeerKey.findMany({
      where: { connectionId: link.spokeConnectionId },
    });
    const raw = {
      status: answered.status,
      headers: Object.fromEntries(answered.headers.entries()),
      body: Buffer.from(answered.text),
    };
    expect(
      verifyReply(raw, spokeKeys, {
        messageId: twin.eventId,
        nonce: twin.nonce,
        instanceId: hub.identity.current().instanceId,
      }),
    ).toMatchObject({ status: 'ok', result: { accepted: true } });

    const before = await hubSide();
    expect(before).toEqual({ status: 'running', error: null, row: 'running' });
    const hostile: Array<[string, Crafted, number, string]> = [
      ['a "completed" signed by a stranger', craft({ state: 'completed', sequence: 99 }, stranger), 401, 'unknown_key'],
      [
        'a stranger’s key under the spoke’s key id',
        craft({ state: 'completed', sequence: 99 }, { ...stranger, keyId: signingKey(spoke.identity.current()).keyId }),
        401,
        'bad_signature',
      ],
      [
        'a "failed" for another agent',
        craft({ state: 'failed', sequence: 99, agentId: `agent-${randomUUID()}`, error: 'forged' }),
        403,
        'agent_mismatch',
      ],
      [
        'an event for a spawn this hub never sent',
        craft({ state: 'completed', sequence: 99, spawnMessageId: randomUUID() }),
        404,
        'unknown_agent',
      ],
      ['a malformed payload', craft({ sequence: 0 }), 400, 'invalid_payload'],
      ['a replay of the valid event', twin, 409, 'nonce_replayed'],
    ];
    for (const [name, crafted, status, code] of hostile) {
      const response = await send(crafted);
      expect([name, response.status, errorCode(response)]).toEqual([name, status, code]);
      expect(await hubSide()).toEqual(before);
    }
    const rejected = await hub.prisma.federationEvent.findMany({
      where: { status: 'rejected', errorCode: { in: ['agent_mismatch', 'unknown_agent', 'invalid_payload'] } },
    });
    expect(rejected.length).toBeGreaterThanOrEqual(3);

    await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, { headers: bearer(link.hubToken) });
    expect(((await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus).state).toBe('killed');
  });

  it('documents the hub endpoints and the event endpoint in the OpenAPI document', async () => {
    const document = (await request(hub.baseUrl, 'GET', '/openapi.json')).body as { paths: Record<string, unknown> };
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/federation/agents/spawn',
        '/api/v1/federation/agents/{agentId}/status',
        '/api/v1/federation/agents/{agentId}/kill',
        '/api/v1/federation/incoming/event',
      ]),
    );
  });
});
