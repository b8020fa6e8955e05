import { issueApiToken } from '../../api/auth';
import { AGENT_LABEL, containerNameFor } from '../../sandbox-runtime/agent-containers';
import { agentStatusQuery, killAgentSignal, type AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, lockAgentRow, pendingActivityTypes, startContinuingAgent } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

/**
 * A kill reaches an agent in every phase of its run and always ends it in `killed`, with its container
 * removed and no container started after the teardown. One host slot, so one phase at a time.
 */
describe('kill in every phase', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'hold the slot': () => ({ ...reply.text('slow'), delayMs: 120_000 }),
      // 200 MB of random bytes take git several seconds to add and commit while collecting.
      'write a large file': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'head -c 200M /dev/urandom > large.bin' } }),
        reply.text('Wrote it.'),
      ]),
      'keep going': (recorded) =>
        reply.toolUse({ name: 'bash', input: { command: recorded.turn < 3 ? 'true' : 'sleep 120' } }),
    }),
  );
  let instance: TestInstance;
  let token: string;
  let workspaceId: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: '1',
    });
    ({ token, workspaceId } = await issueApiToken(instance.prisma, `kill-phases-${Date.now()}`));
    repository = await createRepository();
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  async function spawn(taskId: string, workItem: string): Promise<{ agentId: string; status: string }> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] } },
    });
    expect(response.status).toBe(202);
    return response.body as { agentId: string; status: string };
  }
  const kill = async (agentId: string) =>
    expect(
      (await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: bearer(token) })).status,
    ).toBe(202);
  const pendingActivities = (agentId: string) => pendingActivityTypes(instance.temporal, agentId);

  /** The kill was received while an activity of `activityType` ran: after it was scheduled, before it closed. */
  async function expectKillDuring(agentId: string, activityType: string): Promise<void> {
    const events = (await instance.temporal.workflow.getHandle(agentId).fetchHistory()).events ?? [];
    const scheduled = events
      .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === activityType)
      .map((event) => Number(event.eventId));
    const signalAt = events.find(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === killAgentSignal.name,
    )?.eventId;
    expect(signalAt).toBeDefined();
    const closedAt = (scheduledId: number) =>
      events
        .filter((event) =>
          [
            event.activityTaskCompletedEventAttributes,
            event.activityTaskFailedEventAttributes,
            event.activityTaskCanceledEventAttributes,
            event.activityTaskTimedOutEventAttributes,
          ].some((closed) => closed && Number(closed.scheduledEventId) === scheduledId),
        )
        .map((event) => Number(event.eventId))[0] ?? Infinity;
    expect(
      scheduled.some((scheduledId) => scheduledId < Number(signalAt) && Number(signalAt) < closedAt(scheduledId)),
    ).toBe(true);
  }

  /** The run ended killed (workflow and row), its container is gone, and none appears afterwards. */
  async function expectKilledAndGone(agentId: string): Promise<void> {
    expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('killed');
    expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
      state: 'killed',
    });
    expect(await containersOf(instance.docker, agentId)).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await containersOf(instance.docker, agentId)).toBe(0);
  }

  it('while queued and during a model call; the killed waiter never gets the slot', async () => {
    const holder = await spawn('holder', 'hold the slot');
    await waitUntil(() =>
      Promise.resolve(
        model.requests.some((recorded) => JSON.stringify(recorded.body.messages[0]).includes('hold the slot')),
      ),
    );
    const waiter = await spawn('waiter', 'finish quickly');
    expect(waiter.status).toBe('queued');
    await waitUntil(
      async () =>
        (await instance.temporal.workflow.getHandle(waiter.agentId).query(agentStatusQuery)).state === 'queued',
    );

    await kill(waiter.agentId);
    await expectKilledAndGone(waiter.agentId);
    expect((await instance.temporal.workflow.getHandle(holder.agentId).query(agentStatusQuery)).state).toBe('running');

    await kill(holder.agentId); // its model call is in flight for two more minutes
    await expectKilledAndGone(holder.agentId);
    await expectKillDuring(holder.agentId, 'callModel');

    // The slot is free, and the next spawn gets it at once.
    const next = await spawn('next', 'finish quickly');
    expect(next.status).toBe('spawning');
    expect(((await instance.temporal.workflow.getHandle(next.agentId).result()) as AgentStatus).state).toBe(
      'completed',
    );
  });

  it('while launching: the container the launch started is removed', async () => {
    const { agentId } = await spawn('launching', 'stop me while launching');
    // Hold the launch at its last step (recording the host on the agent's row), as a slow database would.
    const release = await lockAgentRow(instance.prisma, agentId);
    await waitUntil(
      async () =>
        (
          await instance.docker
            .getContainer(containerNameFor(agentId))
            .inspect()
            .catch(() => null)
        )?.State.Running === true,
    );
    expect(await pendingActivities(agentId)).toContain('launchSandbox');

    await kill(agentId);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    release();
    await expectKilledAndGone(agentId);
    await expectKillDuring(agentId, 'launchSandbox');
    expect(
      model.requests.filter((recorded) =>
        JSON.stringify(recorded.body.messages[0]).includes('stop me while launching'),
      ),
    ).toHaveLength(0);
  });

  it('while collecting the result', async () => {
    const { agentId } = await spawn('collecting', 'write a large file');
    await waitUntil(async () => (await pendingActivities(agentId)).includes('collectResult'), 120_000, 100);
    await kill(agentId);
    await expectKilledAndGone(agentId);
    await expectKillDuring(agentId, 'collectResult');
  });

  it('while tearing down after the model finished: the kill still wins over the ending', async () => {
    const { agentId } = await spawn('tearing-down', 'finish quickly');
    // Docker reports the container's death as soon as the teardown removes it: kill right then.
    const events = await instance.docker.getEvents({
      filters: { type: ['container'], event: ['kill', 'die'], label: [`${AGENT_LABEL}=${agentId}`] },
    });
    const dying = new Promise<void>((resolve) => events.once('data', () => resolve()));
    await dying;
    await instance.temporal.workflow
      .getHandle(agentId)
      .signal(killAgentSignal, { reason: 'killed while tearing down' });
    (events as unknown as { destroy: () => void }).destroy();
    await expectKilledAndGone(agentId);

    await expectKillDuring(agentId, 'teardownSandbox');
  });

  it('after the run continued as new, during a tool call', async () => {
    const { agentId, firstRunId } = await startContinuingAgent(instance, {
      workspaceId,
      taskId: 'after-continue-as-new',
      repository,
      workItem: 'keep going',
      turnsPerRun: 2,
    });
    await waitUntil(
      async () =>
        (await instance.prisma.toolCall.count({ where: { agentId, status: 'started', turn: { gte: 3 } } })) > 0 &&
        (await instance.temporal.workflow.getHandle(agentId).describe()).runId !== firstRunId,
    );
    expect((await instance.temporal.workflow.getHandle(agentId).describe()).runId).not.toBe(firstRunId);
    await kill(agentId);
    await expectKilledAndGone(agentId);
    await expectKillDuring(agentId, 'runTool');
  });
});
