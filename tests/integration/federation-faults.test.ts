import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_LABEL } from '../../sandbox-runtime/agent-containers';
import { byTurn, byWorkItem, FakeAnthropic, reply, type Script } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import {
  FEDERATED_SPAWN_WORKFLOW,
  type FederatedAgentStatus,
  type FederatedSpawnInput,
} from '../../workflows/federated-spawn/contract';
import { createTestDatabase } from '../helpers/databases';
import {
  bearer,
  linkInstances,
  sendSignedCommand,
  spawnedAgentId,
  spawnThroughHub,
  type Link,
} from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { recordHistoryIfRequested } from '../helpers/histories';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

/**
 * Faults around an agent run on a peer, with real processes on loopback: the spoke down when the
 * spawn is sent, restarted mid-run, unreachable when a kill is sent, silent past the deadline, and
 * the connection suspended mid-run. The hub asks the spoke after 2 s without news.
 */
const scripts: Record<string, Script> = {
  'sleep a bit': byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 8' } }), reply.text('Slept.')]),
  // Every turn sleeps again: an interrupted call comes back as "outcome unknown", and the agent keeps going.
  'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
  'many turns': byTurn([
    ...Array.from({ length: 8 }, (_, turn) => reply.toolUse({ name: 'bash', input: { command: `echo turn ${turn}` } })),
    reply.text('Eight turns.'),
  ]),
};
const model = new FakeAnthropic(byWorkItem(scripts));

describe('faults around an agent run on a peer', () => {
  let hub: TestInstance;
  let spoke: TestInstance;
  let spokeUp = true;
  let link: Link;
  let repository: string;
  const spokeSettings: Record<string, string> = {};

  const startSpoke = async (): Promise<void> => {
    spoke = await startTestInstance(spokeSettings);
    spokeUp = true;
  };
  const stopSpoke = async (): Promise<void> => {
    await spoke.stop();
    spokeUp = false;
  };

  beforeAll(async () => {
    await model.start();
    // A restarted spoke keeps its address, data, database and task queues, as a real one would.
    Object.assign(spokeSettings, {
      DATABASE_URL: await createTestDatabase(),
      DATA_DIR: await mkdtemp(path.join(os.tmpdir(), 'spoke-faults-')),
      API_PORT: String(await freePort()),
      TASK_QUEUE: `spoke-${randomUUID()}`,
      HOST_ID: `spoke-${randomUUID()}`,
      ANTHROPIC_API_KEY: 'spoke-key',
      ANTHROPIC_BASE_URL: model.url,
    });
    hub = await startTestInstance({ FEDERATION_POLL_INTERVAL: '2' });
    await startSpoke();
    link = await linkInstances(hub, spoke);
    repository = await createRepository();
  });
  afterEach(async () => {
    if (!spokeUp) await startSpoke();
  });
  afterAll(async () => {
    await hub.stop();
    await spoke.stop();
    await model.stop();
  });

  const spawn = async (taskId: string, workItem: string, options: Record<string, unknown> = {}): Promise<string> =>
    spawnedAgentId(await spawnThroughHub(hub, link, { taskId, repository, workItem, options }));
  const status = async (agentId: string) =>
    (
      (
        await request(hub.baseUrl, 'GET', `/api/v1/federation/agents/${agentId}/status`, {
          headers: bearer(link.hubToken),
        })
      ).body as { data: FederatedView }
    ).data;
  const final = (agentId: string): Promise<FederatedAgentStatus> =>
    hub.temporal.workflow.getHandle(agentId).result() as Promise<FederatedAgentStatus>;
  const remoteAgentOf = async (agentId: string): Promise<string> => {
    await waitUntil(
      async () => (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId !== null,
      20_000,
    );
    return (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId ?? '';
  };
  const toolStarted = async (remoteAgentId: string): Promise<void> => {
    await waitUntil(
      async () =>
        (await spoke.prisma.toolCall.findFirst({ where: { agentId: remoteAgentId, status: 'started' } })) !== null,
      20_000,
    );
  };
  const containers = async (remoteAgentId: string): Promise<number> =>
    (await spoke.docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${remoteAgentId}`] } })).length;

  interface FederatedView {
    status: string;
    following: string;
    unreachableSince: string | null;
    lastContactAt: string | null;
    note: string | null;
    error: string | null;
    kill: { reason: string; deliveredAt: string | null } | null;
    result: { summary: string | null } | null;
  }

  // The hub's delivery budget is the task's deadline: maxRetries 2 is the agent's own retries, not the spawn's.
  it.each([
    { downSeconds: 20, history: 'federated-spawn-spoke-down' },
    { downSeconds: 180, history: null },
  ])(
    'delivers a spawn made while the spoke is down for $downSeconds s once ' +
      'it is back, says so meanwhile, and exactly one agent runs',
    async ({ downSeconds, history }) => {
      await stopSpoke();
      const stoppedAt = Date.now();
      const agentId = await spawn(`fault-down-${downSeconds}`, 'sleep a bit', { maxRetries: 2 });
      await waitUntil(
        async () =>
          /has not answered the spawn since .+ sending it again until the task's deadline/.test(
            (await status(agentId)).note ?? '',
          ),
        15_000,
      );
      expect(await status(agentId)).toMatchObject({
        status: 'spawning',
        following: 'unreachable',
        unreachableSince: expect.any(String) as string,
        error: null,
      });

      await new Promise((resolve) => setTimeout(resolve, Math.max(0, stoppedAt + downSeconds * 1000 - Date.now())));
      expect((await status(agentId)).status).toBe('spawning');
      await startSpoke();
      expect((await final(agentId)).state).toBe('completed');
      if (history) await recordHistoryIfRequested(agentId, history);
      expect(await status(agentId)).toMatchObject({ status: 'completed', note: null, result: { summary: 'Slept.' } });

      const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
      expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(1);
      const sent = await hub.prisma.federationCommand.findFirstOrThrow({
        where: { messageId: spawnMessageId, direction: 'outbound' },
      });
      expect(sent.status).toBe('succeeded');
      expect(sent.attempts).toBeGreaterThanOrEqual(3);
    },
    420_000,
  );

  it(
    'settles a spawn killed while the spoke is down: the spoke cancels it ' + 'for good, and a late copy is refused',
    async () => {
      await stopSpoke();
      const agentId = await spawn('fault-down-killed', 'sleep a bit');
      await waitUntil(async () => /has not answered the spawn/.test((await status(agentId)).note ?? ''), 15_000);
      const killed = await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, {
        headers: bearer(link.hubToken),
      });
      expect(killed.status).toBe(202);
      await waitUntil(async () => /its kill is not delivered yet/.test((await status(agentId)).note ?? ''), 15_000);
      expect((await status(agentId)).status).toBe('spawning');

      await startSpoke();
      const settled = await final(agentId);
      expect(settled).toMatchObject({ state: 'killed', remoteAgentId: null });
      expect(settled.kill?.deliveredAt).toEqual(expect.any(String));
      expect(settled.error).toMatch(/had not taken the spawn: it is cancelled there and will never run/);
      const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
      expect(
        await hub.prisma.federationCommand.findFirstOrThrow({
          where: { messageId: spawnMessageId, direction: 'outbound' },
        }),
      ).toMatchObject({ status: 'failed' });

      // A copy of the spawn still on its way (the same messageId and payload) is refused, and nothing runs.
      const sent = await hub.prisma.federationCommand.findFirstOrThrow({
        where: { messageId: spawnMessageId, direction: 'outbound' },
      });
      const copy = await sendSignedCommand(hub, spoke, {
        messageId: spawnMessageId,
        commandType: 'agent.spawn',
        payload: sent.payload as Record<string, unknown>,
      });
      expect([copy.status, errorCode(copy)]).toEqual([409, 'spawn_cancelled']);
      expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(0);
    },
    180_000,
  );

  it('keeps following through a restart of the spoke in the middle of a run', async () => {
    const agentId = await spawn('fault-restart', 'sleep a bit');
    const remoteAgentId = await remoteAgentOf(agentId);
    await toolStarted(remoteAgentId);
    await stopSpoke();
    await waitUntil(async () => /has not answered since/.test((await status(agentId)).note ?? ''), 15_000);
    const unreachable = await status(agentId);
    expect(unreachable).toMatchObject({
      status: 'running',
      following: 'unreachable',
      unreachableSince: expect.any(String) as string,
    });

    await startSpoke();
    // The note ends the moment the spoke answers again, and the last contact moved forward.
    await waitUntil(async () => (await status(agentId)).following !== 'unreachable', 20_000);
    const again = await status(agentId);
    expect(again).toMatchObject({
      following: expect.stringMatching(/^(following|ended)$/) as string,
      unreachableSince: null,
    });
    expect(again.note ?? '').not.toMatch(/has not answered/);
    expect((again.lastContactAt ?? '') > (unreachable.lastContactAt ?? '')).toBe(true);
    expect((await final(agentId)).state).toBe('completed');
    const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
    expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(1);
    expect((await status(agentId)).result).toMatchObject({ summary: 'Slept.' });
  });

  it(
    'delivers a kill sent while the spoke is unreachable once it is back, ' + 'and says why it waits meanwhile',
    async () => {
      const agentId = await spawn('fault-kill', 'sleep long');
      const remoteAgentId = await remoteAgentOf(agentId);
      await toolStarted(remoteAgentId);
      await stopSpoke();

      const killed = await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, {
        headers: bearer(link.hubToken),
      });
      expect(killed.status).toBe(202);
      await waitUntil(async () => /kill not delivered yet/.test((await status(agentId)).note ?? ''), 15_000);
      expect(await status(agentId)).toMatchObject({
        status: 'running',
        kill: { reason: 'killed through the hub API', deliveredAt: null },
      });

      await startSpoke();
      expect((await final(agentId)).state).toBe('killed');
      await recordHistoryIfRequested(agentId, 'federated-spawn-kill-while-unreachable');
      expect(((await spoke.temporal.workflow.getHandle(remoteAgentId).result()) as AgentStatus).state).toBe('killed');
      expect(await containers(remoteAgentId)).toBe(0);
      expect((await status(agentId)).kill?.deliveredAt).toEqual(expect.any(String));
      // No record stays open: the killed tool call ended cancelled on the spoke, and every command the hub sent ended.
      expect(
        (await spoke.prisma.toolCall.findMany({ where: { agentId: remoteAgentId } })).map((call) => call.status),
      ).toContain('cancelled');
      expect(await spoke.prisma.toolCall.count({ where: { agentId: remoteAgentId, status: 'started' } })).toBe(0);
      expect(
        await hub.prisma.federationCommand.count({
          where: { connectionId: link.hubConnectionId, direction: 'outbound', status: 'sending' },
        }),
      ).toBe(0);
    },
  );

  it(
    'stops following while the connection is suspended, says why, sends ' + 'nothing, and follows again once resumed',
    async () => {
      const agentId = await spawn('fault-suspend', 'sleep a bit');
      await remoteAgentOf(agentId);
      await waitUntil(async () => (await status(agentId)).status === 'running', 20_000);

      const suspended = await request(
        spoke.baseUrl,
        'POST',
        `/api/v1/federation/connections/${link.spokeConnectionId}/suspend`,
        { headers: bearer(link.spokeToken) },
      );
      expect(suspended.body).toMatchObject({ status: 'SUSPENDED', peerNotified: true });
      await waitUntil(async () => (await status(agentId)).following === 'paused', 10_000);
      expect((await status(agentId)).note).toMatch(/SUSPENDED: following is paused/);

      const sentToSpoke = () =>
        hub.prisma.federationCommand.count({ where: { connectionId: link.hubConnectionId, direction: 'outbound' } });
      const before = await sentToSpoke();
      await new Promise((resolve) => setTimeout(resolve, 5_000)); // more than two poll intervals
      expect(await sentToSpoke()).toBe(before);
      expect((await status(agentId)).following).toBe('paused');

      await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${link.spokeConnectionId}/resume`, {
        headers: bearer(link.spokeToken),
      });
      expect((await final(agentId)).state).toBe('completed');
      await recordHistoryIfRequested(agentId, 'federated-spawn-paused-and-resumed');
      expect((await status(agentId)).result).toMatchObject({ summary: 'Slept.' });
    },
  );

  it(
    'enforces the task’s timeout on the hub when the spoke goes silent, and ' + 'on the spoke by its own timer',
    async () => {
      // The spoke would time the agent out at 10 s; it is down by then, so the hub decides at 10 s + 5 s of grace.
      const agentId = await spawn('fault-timeout', 'sleep long', { timeout: 10_000 });
      const remoteAgentId = await remoteAgentOf(agentId);
      await toolStarted(remoteAgentId);
      await stopSpoke();

      const decided = await final(agentId);
      expect(decided.state).toBe('timed_out');
      await recordHistoryIfRequested(agentId, 'federated-spawn-hub-deadline');
      expect(decided.error).toMatch(/no final state from .+ within the task's timeout of 10000 ms/);
      expect(decided.kill).toMatchObject({ reason: 'the task timed out', deliveredAt: null });

      await startSpoke();
      expect(((await spoke.temporal.workflow.getHandle(remoteAgentId).result()) as AgentStatus).state).toBe(
        'timed_out',
      );
      expect(await containers(remoteAgentId)).toBe(0);
    },
  );

  it('continues as new before its history grows long, and keeps following', async () => {
    // Started directly with a small history limit (the API's default is 2000 events).
    const agentId = `agent-${randomUUID()}`;
    const spawnMessageId = randomUUID();
    const connection = await hub.prisma.federationConnection.findUniqueOrThrow({ where: { id: link.hubConnectionId } });
    const payload = {
      taskId: 'fault-long',
      agentType: 'worker' as const,
      context: { repository, branch: 'main', workItems: ['many turns'] },
      options: { maxRetries: 2 },
    };
    const row = await hub.prisma.agent.create({
      data: {
        id: agentId,
        workspaceId: link.hubWorkspaceId,
        taskId: payload.taskId,
        agentType: 'worker',
        state: 'spawning',
        context: payload.context,
        options: {},
        remote: { create: { connectionId: connection.id, spawnMessageId } },
      },
    });
    const input: FederatedSpawnInput = {
      agentId,
      workspaceId: link.hubWorkspaceId,
      remote: { connectionId: connection.id, instanceId: connection.peerInstanceId, name: connection.peerName },
      spawnMessageId,
      payload,
      spawnedAt: row.createdAt.toISOString(),
      pollIntervalSeconds: 2,
      historyLimit: 40,
    };
    const handle = await hub.temporal.workflow.start(FEDERATED_SPAWN_WORKFLOW, {
      taskQueue: hub.taskQueue,
      workflowId: agentId,
      args: [input],
    });
    const result = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
    expect(result).toMatchObject({ state: 'completed', progress: { turn: 9 } });
    await recordHistoryIfRequested(agentId, 'federated-spawn-continued-as-new');

    const firstRun = await hub.temporal.workflow.getHandle(agentId, handle.firstExecutionRunId).fetchHistory();
    const events = firstRun.events ?? [];
    expect(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    expect(events.length).toBeLessThan(70);
    expect(
      (await spoke.prisma.agent.findMany({ where: { originMessageId: spawnMessageId } })).map((agent) => agent.state),
    ).toEqual(['completed']);
  });
});
