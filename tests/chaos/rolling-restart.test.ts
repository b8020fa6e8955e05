import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { UNKNOWN_TOOL_OUTCOME } from '../../model-client/conversation';
import { byTurn, call, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers } from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { sample } from '../helpers/metrics';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';
import { workerProcess, type WorkerProcess } from '../helpers/worker-process';

const AGENTS = 10;
/** Long enough that both restarts of the first round land inside every agent's tool call. */
const TOOL_SECONDS = 45;

/**
 * Deploys do not interrupt work: two worker processes serve one host, and two rolling restarts
 * (SIGTERM one, start it again, then the other) run while ten agents are in long tool calls, and
 * again while their model replies stream. Every tool call ends with its real exit code (none
 * unknown, none run twice), every cut stream is asked again from the stored transcript, and no turn
 * is lost or stored twice.
 */
describe('chaos: rolling worker restarts while agents work', () => {
  const model = new FakeAnthropic(
    byTurn([
      reply.toolUse(call.bash(`echo started >> runs.txt; sleep ${TOOL_SECONDS}; exit 7`)),
      { ...reply.say('Finished after the long call. '.repeat(20)), eventDelayMs: 400 },
    ]),
  );
  let instance: TestInstance;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    await model.start();
    const settings = {
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: String(AGENTS),
    };
    instance = await startTestInstance(settings, { worker: false });
    for (let index = 0; index < 2; index++) workers.push(await workerProcess(instance.config, settings));
    await Promise.all(workers.map((worker) => worker.start()));
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await instance.stop();
    await model.stop();
  });

  /** SIGTERM each worker in turn and start it again, the other one serving meanwhile. */
  async function rollingRestart(): Promise<void> {
    for (const worker of workers) {
      await worker.stop('SIGTERM');
      await worker.start();
    }
  }

  const interrupted = async (): Promise<number> => {
    let total = 0;
    for (const worker of workers)
      total += sample(await worker.metrics(), 'orchestrator_activity_duration_seconds_count', {
        outcome: 'interrupted',
      });
    return total;
  };

  it(
    "ends every agent with its tool call's real exit code, each call run once, no turn lost or stored twice",
    async () => {
      const { token } = await issueApiToken(instance.prisma, `rolling-${Date.now()}`);
      const repository = await createRepository();
      const agentIds: string[] = [];
      for (let index = 0; index < AGENTS; index++) {
        const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers: bearer(token),
          json: {
            taskId: `rolling-${index}`,
            agentType: 'worker',
            context: { repository, branch: 'main', workItems: [`work ${index}`] },
            options: { maxRetries: 0 },
          },
        });
        expect(response.status).toBe(202);
        agentIds.push((response.body as { agentId: string }).agentId);
      }
      const sandboxes = agentIds.map((agentId) => sampleContainers(instance.docker, agentId));

      // First round: every agent is inside its long tool call.
      await waitUntil(
        async () =>
          (await instance.prisma.toolCall.count({ where: { agentId: { in: agentIds }, status: 'started' } })) ===
          AGENTS,
        120_000,
        250,
      );
      expect(await instance.prisma.toolCall.count({ where: { agentId: { in: agentIds }, status: 'started' } })).toBe(
        AGENTS,
      );
      await rollingRestart();
      let interruptions = await interrupted();
      // Second round: while the model's replies stream.
      await waitUntil(
        () => Promise.resolve(model.requests.filter((recorded) => recorded.turn === 1).length >= AGENTS / 2),
        120_000,
        100,
      );
      await rollingRestart();
      interruptions += await interrupted();

      const states = await Promise.all(
        agentIds.map(
          async (agentId) =>
            ((await instance.temporal.workflow.getHandle(agentId).result()) as { state: string }).state,
        ),
      );
      expect(states).toEqual(agentIds.map(() => 'completed'));
      // Restarts did interrupt activities (the metric counts them on the workers that came up again; the stopped ones
      // counted theirs too).
      expect(interruptions + model.requests.filter((recorded) => recorded.stream?.aborted).length).toBeGreaterThan(0);

      const calls = await instance.prisma.toolCall.findMany({ where: { agentId: { in: agentIds } } });
      expect(calls.map((entry) => [entry.status, entry.exitCode])).toEqual(agentIds.map(() => ['finished', 7]));
      for (const agentId of agentIds) {
        // The call ran once, whatever the number of attempts that waited for it.
        const runs = await instance.prisma.agentEvent.count({ where: { agentId, type: 'tool' } });
        expect([agentId, runs]).toEqual([agentId, 1]);
        const turns = await instance.prisma.agentEvent.findMany({
          where: { agentId, type: 'turn' },
          select: { data: true },
        });
        expect(turns.map((event) => (event.data as { turn: number }).turn)).toEqual([1, 2]);
        const replies = await instance.prisma.agentMessage.findMany({
          where: { agentId, role: 'assistant' },
          select: { seq: true },
        });
        expect(replies.map((message) => message.seq)).toEqual([1, 3]);
      }
      // The model never heard "unknown", and each agent's tool started once in its workspace.
      expect(
        model.requests.some((recorded) => JSON.stringify(recorded.body.messages).includes(UNKNOWN_TOOL_OUTCOME)),
      ).toBe(false);
      for (const [index, agentId] of agentIds.entries()) {
        expect([agentId, await sandboxes[index]!.stop()]).toEqual([agentId, 1]);
        expect(await withWorkspace(instance, agentId, (dir) => readFile(path.join(dir, 'runs.txt'), 'utf8'))).toBe(
          'started\n',
        );
        expect(await containersOf(instance.docker, agentId)).toBe(0);
      }
    },
    10 * 60_000,
  );
});
