import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { retentionScheduleId } from '../../workflows/retention/contract';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

const DAY_MS = 24 * 3600 * 1000;

/**
 * Tables that grow with every agent are pruned by the instance's retention schedule (a Temporal
 * Schedule the Web UI lists): event logs, transitions, transcripts, tool calls, federation commands,
 * events and spent nonces, and each host's old workspaces. What is recent, live, or still owed to a
 * callback receiver stays.
 */
describe('retention', () => {
  let instance: TestInstance;
  let workspaceId: string;

  beforeAll(async () => {
    instance = await startTestInstance();
    ({ workspaceId } = await issueApiToken(instance.prisma, `retention-${Date.now()}`));
  });
  afterAll(async () => {
    await instance.stop();
  });

  /** An agent with a log, a transcript, a tool call and a workspace, finished `finishedAgoMs` ago (null: live). */
  async function agentWithRecords(name: string, finishedAgoMs: number | null): Promise<string> {
    const id = `agent-${randomUUID()}`;
    const createdAt = new Date(Date.now() - 41 * DAY_MS);
    const finishedAt = finishedAgoMs === null ? null : new Date(Date.now() - finishedAgoMs);
    const context = { repository: '/tmp/x', branch: 'main', workItems: [name] };
    await instance.prisma.agent.create({
      data: {
        id,
        workspaceId,
        taskId: name,
        agentType: 'worker',
        state: finishedAt ? 'completed' : 'running',
        context,
        options: {},
        createdAt,
        finishedAt,
        hostQueue: null,
      },
    });
    await instance.prisma.agentEvent.createMany({
      data: [1, 2, 3].map((seq) => ({ agentId: id, seq, type: 'state', data: { type: 'state' }, at: createdAt })),
    });
    await instance.prisma.agentTransition.create({ data: { agentId: id, toState: 'running', at: createdAt } });
    await instance.prisma.agentMessage.createMany({
      data: [0, 1].map((seq) => ({ agentId: id, seq, role: seq === 0 ? 'user' : 'assistant', content: [], createdAt })),
    });
    await instance.prisma.toolCall.create({
      data: { id: 'toolu_1', agentId: id, turn: 0, name: 'bash', input: {}, status: 'finished' },
    });
    const workspace = path.join(instance.config.DATA_DIR, 'workspaces', id);
    await mkdir(workspace, { recursive: true });
    await writeFile(path.join(workspace, 'result.txt'), name);
    return id;
  }

  const recordsOf = async (agentId: string) => ({
    events: await instance.prisma.agentEvent.count({ where: { agentId } }),
    transitions: await instance.prisma.agentTransition.count({ where: { agentId } }),
    messages: await instance.prisma.agentMessage.count({ where: { agentId } }),
    toolCalls: await instance.prisma.toolCall.count({ where: { agentId } }),
    workspace: existsSync(path.join(instance.config.DATA_DIR, 'workspaces', agentId)),
  });

  it(
    'is a schedule of the instance that prunes what is old and keeps what ' + 'is recent, live or owed to a receiver',
    async () => {
      const schedule = await instance.temporal.schedule.getHandle(retentionScheduleId(instance.taskQueue)).describe();
      expect(schedule.action).toMatchObject({
        type: 'startWorkflow',
        workflowType: 'retention',
        taskQueue: instance.taskQueue,
      });
      expect(schedule.spec.intervals?.[0]?.every).toBe(60 * 60 * 1000);

      const old = await agentWithRecords('old', 40 * DAY_MS);
      const recent = await agentWithRecords('recent', 3600 * 1000);
      const live = await agentWithRecords('live', null);
      const owed = await agentWithRecords('owed', 40 * DAY_MS);
      // A session whose receiver has acknowledged only the first event: its log stays until delivered.
      await instance.prisma.session.create({
        data: { agentId: owed, task: {}, callbackUrl: 'http://127.0.0.1:9/cb', callbackAudience: 'x', deliveredSeq: 1 },
      });
      const connection = await instance.prisma.federationConnection.create({
        data: {
          id: randomUUID(),
          workspaceId,
          peerInstanceId: `peer-${Date.now()}`,
          peerName: 'peer',
          peerUrl: 'http://127.0.0.1:9',
          status: 'ACTIVE',
          initiatedBy: 'local',
          allowedCommandTypes: [],
        },
      });
      const command = (ago: number) => ({
        id: randomUUID(),
        direction: 'inbound',
        connectionId: connection.id,
        messageId: randomUUID(),
        status: 'succeeded',
        createdAt: new Date(Date.now() - ago),
      });
      await instance.prisma.federationCommand.createMany({ data: [command(40 * DAY_MS), command(DAY_MS)] });
      // Sends no attempt will follow any more end failed; one still being retried stays as it is.
      const sending = (ago: number) => ({ ...command(ago), direction: 'outbound', status: 'sending' });
      const [abandoned, retrying] = [sending(2 * 3600 * 1000), sending(60 * 1000)];
      await instance.prisma.federationCommand.createMany({ data: [abandoned, retrying] });
      const event = (ago: number) => ({
        id: randomUUID(),
        connectionId: connection.id,
        eventId: randomUUID(),
        status: 'accepted',
        createdAt: new Date(Date.now() - ago),
      });
      await instance.prisma.federationEvent.createMany({ data: [event(40 * DAY_MS), event(DAY_MS)] });
      await instance.prisma.federationNonce.createMany({
        data: [
          { keyId: 'k', nonce: 'spent-nonce-000001', expiresAt: new Date(Date.now() - 1000) },
          { keyId: 'k', nonce: 'valid-nonce-000001', expiresAt: new Date(Date.now() + 600_000) },
        ],
      });
      // The worker reports its host before the run, so the run reaches the host's workspaces.
      await waitUntil(async () => (await instance.prisma.workerHost.count()) > 0, 30_000);

      await instance.temporal.schedule.getHandle(retentionScheduleId(instance.taskQueue)).trigger();
      await waitUntil(async () => !(await recordsOf(old)).workspace, 60_000, 250);

      expect(await recordsOf(old)).toEqual({ events: 0, transitions: 0, messages: 0, toolCalls: 0, workspace: false });
      expect(await recordsOf(recent)).toEqual({
        events: 3,
        transitions: 1,
        messages: 2,
        toolCalls: 1,
        workspace: true,
      });
      expect(await recordsOf(live)).toEqual({ events: 3, transitions: 1, messages: 2, toolCalls: 1, workspace: true });
      // The transcript of the owed session goes; its log stays for the receiver.
      expect(await recordsOf(owed)).toMatchObject({ events: 3, messages: 0, toolCalls: 0 });
      const commands = await instance.prisma.federationCommand.findMany({
        where: { connectionId: connection.id, direction: 'inbound' },
      });
      expect(commands.map((row) => Math.round((Date.now() - row.createdAt.getTime()) / DAY_MS))).toEqual([1]);
      expect(await instance.prisma.federationCommand.findUniqueOrThrow({ where: { id: abandoned.id } })).toMatchObject({
        status: 'failed',
        errorCode: 'abandoned',
      });
      expect(await instance.prisma.federationCommand.findUniqueOrThrow({ where: { id: retrying.id } })).toMatchObject({
        status: 'sending',
      });
      expect(await instance.prisma.federationEvent.count({ where: { connectionId: connection.id } })).toBe(1);
      expect(
        (await instance.prisma.federationNonce.findMany({ where: { keyId: 'k' } })).map((row) => row.nonce),
      ).toEqual(['valid-nonce-000001']);
      // The agents themselves stay: their rows are the record of what ran.
      expect(await instance.prisma.agent.count({ where: { id: { in: [old, recent, live, owed] } } })).toBe(4);
    },
  );
});
