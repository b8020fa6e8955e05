import type { ChildProcess } from 'node:child_process';
import { byTurn, byWorkItem, FakeAnthropic, reply, type Script, EDITOR } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import type { FederatedAgentStatus } from '../../workflows/federated-spawn/contract';
import { bearer, linkInstances, spawnedAgentId, spawnThroughHub, type Link } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { freePort } from '../helpers/ports';
import { TcpProxy } from '../helpers/tcp-proxy';
import { waitUntil } from '../helpers/wait';
import { startWorkerProcess } from '../helpers/processes';

/**
 * The link between hub and spoke, and the hub's own worker, failing for real: each instance is
 * reached through a loopback proxy that can drop all traffic, and the hub's worker is a separate
 * process that can be SIGKILLed.
 */
const scripts: Record<string, Script> = {
  'write hello': byTurn([
    reply.toolUse({
      name: EDITOR,
      input: { command: 'create', path: 'hello.txt', file_text: 'hello across a broken link\n' },
    }),
    reply.toolUse({ name: 'bash', input: { command: 'sleep 3; cat hello.txt' } }),
    reply.text('Wrote hello.txt.'),
  ]),
  'sleep a bit': byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 8' } }), reply.text('Slept.')]),
  'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
};
const model = new FakeAnthropic(byWorkItem(scripts));

describe('a broken link and a killed hub worker', () => {
  let hub: TestInstance;
  let spoke: TestInstance;
  let hubProxy: TcpProxy;
  let spokeProxy: TcpProxy;
  let link: Link;
  let repository: string;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await model.start();
    // Each instance's public address is its proxy: what the other one calls, and what signatures cover.
    const [hubPort, spokePort] = [await freePort(), await freePort()];
    hubProxy = new TcpProxy(hubPort);
    spokeProxy = new TcpProxy(spokePort);
    await hubProxy.start();
    await spokeProxy.start();
    // A request the cut swallows is given up after 5 s (FEDERATION_PEER_TIMEOUT), and sent again.
    hub = await startTestInstance(
      {
        API_PORT: String(hubPort),
        PUBLIC_URL: hubProxy.url,
        FEDERATION_POLL_INTERVAL: '2',
        FEDERATION_PEER_TIMEOUT: '5',
      },
      { worker: false },
    );
    spoke = await startTestInstance({
      API_PORT: String(spokePort),
      PUBLIC_URL: spokeProxy.url,
      ANTHROPIC_API_KEY: 'spoke-key',
      ANTHROPIC_BASE_URL: model.url,
    });
    workers.push(startWorkerProcess(hub.config));
    link = await linkInstances(hub, spoke, spokeProxy.url);
    repository = await createRepository();
  });
  afterEach(() => {
    // A test that failed mid-cut leaves the link as it found it (a healthy link keeps its connections).
    if (hubProxy.isCut) hubProxy.restore();
    if (spokeProxy.isCut) spokeProxy.restore();
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await hub.stop();
    await spoke.stop();
    await hubProxy.stop();
    await spokeProxy.stop();
    await model.stop();
  });

  const spawn = async (taskId: string, workItem: string, options: Record<string, unknown> = {}): Promise<string> =>
    spawnedAgentId(await spawnThroughHub(hub, link, { taskId, repository, workItem, options }));

  // Five minutes: far past every backoff's cap (30 s) and every request's timeout, so the spawn is sent again
  // many times into the cut, as in a long outage.
  it.each([300])(
    'survives the link cut for %i s right after the spoke took the spawn: ' +
      'the hub resumes, and there is still one agent',
    async (cutSeconds) => {
      // The spoke runs the spawn; its answer, and everything after it in either direction, is dropped.
      spokeProxy.cutAfter('"agent.spawn"');
      const agentId = await spawn(`cut-link-${cutSeconds}`, 'write hello', { maxRetries: 2 });
      await waitUntil(() => Promise.resolve(spokeProxy.isCut), 20_000);
      hubProxy.cutLink();
      const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
      await waitUntil(
        async () => (await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })) === 1,
        10_000,
      );

      await new Promise((resolve) => setTimeout(resolve, cutSeconds * 1000));
      // Meanwhile the agent did its work on the spoke, and the hub never heard back: it still says it is delivering.
      expect(await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'spawning',
        error: null,
      });
      const onSpoke = await spoke.prisma.agent.findFirstOrThrow({ where: { originMessageId: spawnMessageId } });
      expect(onSpoke.state).toBe('completed');
      expect((await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId).toBeNull();
      hubProxy.restore();
      spokeProxy.restore();

      const final = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
      expect(final).toMatchObject({ state: 'completed', remoteAgentId: onSpoke.id });
      const status = await request(hub.baseUrl, 'GET', `/api/v1/federation/agents/${agentId}/status`, {
        headers: bearer(link.hubToken),
      });
      expect((status.body as { data: { result: { diff: string } } }).data.result.diff).toContain(
        '+hello across a broken link',
      );

      // Still one agent: the retried spawn (same messageId) got the stored reply.
      expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(1);
      expect(
        await spoke.prisma.federationCommand.count({ where: { direction: 'inbound', messageId: spawnMessageId } }),
      ).toBe(1);
      const sent = await hub.prisma.federationCommand.findFirstOrThrow({
        where: { direction: 'outbound', messageId: spawnMessageId },
      });
      expect(sent.status).toBe('succeeded');
      expect(sent.attempts).toBeGreaterThanOrEqual(2);
    },
    480_000,
  );

  it(
    'delivers a kill made during a cut that swallowed the spawn’s answer ' + 'within seconds of the link’s return',
    async () => {
      spokeProxy.cutAfter('"agent.spawn"');
      const agentId = await spawn('cut-link-killed', 'sleep long');
      await waitUntil(() => Promise.resolve(spokeProxy.isCut), 20_000);
      const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
      await waitUntil(
        async () => (await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })) === 1,
        10_000,
      );
      // The operator's kill reaches the hub (its API is behind the hub's proxy too), then the link is cut both ways.
      const killed = await request(hub.baseUrl, 'POST', `/api/v1/federation/agents/${agentId}/kill`, {
        headers: bearer(link.hubToken),
      });
      expect(killed.status).toBe(202);
      hubProxy.cutLink();
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      expect(await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({ state: 'spawning' });

      const restoredAt = Date.now();
      hubProxy.restore();
      spokeProxy.restore();
      const onSpoke = await spoke.prisma.agent.findFirstOrThrow({ where: { originMessageId: spawnMessageId } });
      expect(((await spoke.temporal.workflow.getHandle(onSpoke.id).result()) as AgentStatus).state).toBe('killed');
      // The kill waits at most the backoff's cap (30 s) for its next try; a poll interval here is 2 s.
      expect(Date.now() - restoredAt).toBeLessThan(45_000);
      const final = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
      expect(final).toMatchObject({
        state: 'killed',
        remoteAgentId: onSpoke.id,
        kill: { reason: 'killed through the hub API' },
      });
      expect(final.kill?.deliveredAt).toEqual(expect.any(String));
      expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(1);
    },
    180_000,
  );

  it(
    'resumes the hub’s workflow after its worker is SIGKILLed mid-run, and ' +
      'catches up with what happened meanwhile',
    async () => {
      const agentId = await spawn('hub-worker-crash', 'sleep a bit');
      await waitUntil(
        async () => (await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state === 'running',
        30_000,
      );
      const remoteAgentId =
        (await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } })).remoteAgentId ?? '';
      const statusOf = async () => {
        const startedAt = Date.now();
        const answer = await request(hub.baseUrl, 'GET', `/api/v1/federation/agents/${agentId}/status`, {
          headers: bearer(link.hubToken),
        });
        return {
          ...(
            answer.body as {
              data: { following: string; note: string | null; lastContactAt: string | null; status: string };
            }
          ).data,
          tookMs: Date.now() - startedAt,
        };
      };
      const live = await statusOf();
      expect(live).toMatchObject({ following: 'following', status: 'running' });
      workers[0]!.kill('SIGKILL');

      // Without its worker the hub answers from its database at once, and says so; the last contact does not go back.
      const recorded = await statusOf();
      expect(recorded).toMatchObject({ following: 'worker_unavailable', status: 'running' });
      expect(recorded.note).toMatch(/the hub's worker did not answer within 1 s: this is the last recorded state/);
      expect(recorded.tookMs).toBeLessThan(2_500); // the query's deadline is 1 s, not the 3 s it used to wait
      expect(
        recorded.lastContactAt !== null && live.lastContactAt !== null && recorded.lastContactAt >= live.lastContactAt,
      ).toBe(true);

      // The spoke finishes while the hub has no worker; its events reach the hub's API and wait as signals.
      expect(((await spoke.temporal.workflow.getHandle(remoteAgentId).result()) as AgentStatus).state).toBe(
        'completed',
      );
      await waitUntil(
        async () => (await hub.prisma.federationEvent.count({ where: { agentId, state: 'completed' } })) === 1,
        30_000,
      );
      expect((await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).state).toBe('running');

      workers.push(startWorkerProcess(hub.config));
      const final = (await hub.temporal.workflow.getHandle(agentId).result()) as FederatedAgentStatus;
      expect(final).toMatchObject({ state: 'completed', remoteAgentId });
      const row = await hub.prisma.agent.findUniqueOrThrow({ where: { id: agentId }, include: { result: true } });
      expect(row).toMatchObject({ state: 'completed', result: { summary: 'Slept.' } });
      const { spawnMessageId } = await hub.prisma.federatedAgent.findUniqueOrThrow({ where: { agentId } });
      expect(await spoke.prisma.agent.count({ where: { originMessageId: spawnMessageId } })).toBe(1);
    },
    180_000,
  );
});
