import type { ChildProcess } from 'node:child_process';
import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import {
  containersOf,
  lockAgentRow,
  pendingActivityTypes,
  sampleContainers,
  startContinuingAgent,
} from '../helpers/chaos';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';

/**
 * The only worker is SIGKILLed while three agents are each in another phase: one launching (held at
 * its last step by a row lock, its container already running), one collecting its result, one in a
 * tool call after its run continued as new. A new worker takes over; each ends completed with one
 * sandbox, and nothing is left behind.
 */
describe('chaos: the worker SIGKILLed while agents launch, collect, and run after continue-as-new', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      // 300 MB of random bytes keep git busy for several seconds while the result is collected.
      'write a large file': byTurn([
        reply.toolUse({ name: 'bash', input: { command: 'head -c 300M /dev/urandom > large.bin' } }),
        reply.text('Wrote it.'),
      ]),
      'keep going': (recorded) =>
        recorded.turn < 3
          ? reply.toolUse({
              name: 'bash',
              input: { command: recorded.turn < 2 ? 'true' : 'echo started >> log.txt; sleep 60' },
            })
          : reply.text('Kept going.'),
    }),
  );
  let instance: TestInstance;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({ MAX_CONCURRENT_AGENTS: '3' }, { worker: false });
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  it('completes all three on the new worker, one sandbox each', async () => {
    const { token, workspaceId } = await issueApiToken(instance.prisma, `worker-kill-more-${Date.now()}`);
    const repository = await createRepository();
    const settings = { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url };
    workers.push(startWorkerProcess(instance.config, settings));
    const spawn = async (taskId: string, workItem: string) => {
      const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
        headers: bearer(token),
        json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] } },
      });
      expect(response.status).toBe(202);
      return (response.body as { agentId: string }).agentId;
    };
    const pendingActivities = (agentId: string) => pendingActivityTypes(instance.temporal, agentId);

    // After continue-as-new (two turns a run), in the long tool call of its third turn.
    const { agentId: continued, firstRunId } = await startContinuingAgent(instance, {
      workspaceId,
      taskId: 'continued',
      repository,
      workItem: 'keep going',
      turnsPerRun: 2,
    });
    const continuedSandboxes = sampleContainers(instance.docker, continued);

    // Launching: held at its last step (recording its host on its row) by a row lock.
    const launching = await spawn('launching', 'finish at once');
    const launchingSandboxes = sampleContainers(instance.docker, launching);
    const release = await lockAgentRow(instance.prisma, launching);

    const collecting = await spawn('collecting', 'write a large file');
    const collectingSandboxes = sampleContainers(instance.docker, collecting);
    await waitUntil(
      async () =>
        (await pendingActivities(continued)).includes('runTool') &&
        (await instance.temporal.workflow.getHandle(continued).describe()).runId !== firstRunId,
      60_000,
    );
    await waitUntil(async () => (await pendingActivities(collecting)).includes('collectResult'), 120_000, 100);
    expect(await pendingActivities(collecting)).toContain('collectResult');
    expect(await pendingActivities(launching)).toContain('launchSandbox');
    expect(await pendingActivities(continued)).toContain('runTool');

    workers[0]!.kill('SIGKILL');
    release();
    workers.push(startWorkerProcess(instance.config, settings));

    for (const agentId of [launching, collecting, continued]) {
      expect([agentId, ((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state]).toEqual([
        agentId,
        'completed',
      ]);
      expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'completed',
      });
    }
    for (const sampler of [launchingSandboxes, collectingSandboxes, continuedSandboxes])
      expect(await sampler.stop()).toBe(1);
    for (const agentId of [launching, collecting, continued])
      expect(await containersOf(instance.docker, agentId)).toBe(0);
    const collected = await instance.prisma.agentResult.findUniqueOrThrow({ where: { agentId: collecting } });
    expect(collected.commitSha).toMatch(/^[0-9a-f]{40}$/);
  });
});
