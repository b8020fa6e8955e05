import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { AGENT_LABEL } from '../../sandbox-runtime/agent-containers';
import { UNKNOWN_TOOL_OUTCOME } from '../../model-client/conversation';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, FakeAnthropic, reply, EDITOR } from '../../scripts/scripted-model-server';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';
import { startWorkerProcess } from '../helpers/processes';

describe('a worker killed with SIGKILL in the middle of a run', () => {
  const model = new FakeAnthropic(
    byTurn([
      reply.toolUse({ name: EDITOR, input: { command: 'create', path: 'first.txt', file_text: 'written once\n' } }),
      reply.toolUse({
        name: 'bash',
        input: { command: 'echo started >> log.txt; sleep 25; echo finished >> log.txt' },
      }),
      reply.text('Done despite the crash.'),
    ]),
  );
  let instance: TestInstance;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({}, { worker: false });
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await instance.stop();
    await model.stop();
  });

  it(
    'completes on a new worker that re-attaches to the running tool call: ' +
      'one container, no turn repeated, the real outcome',
    async () => {
      const { token } = await issueApiToken(instance.prisma, `crash-${Date.now()}`);
      const repository = await createRepository();
      workers.push(
        startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url }),
      );

      const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
        headers: { authorization: `Bearer ${token}` },
        json: {
          taskId: 'crash',
          agentType: 'worker',
          context: { repository, branch: 'main', workItems: ['survive a crash'] },
        },
      });
      expect(spawned.status).toBe(202);
      const { agentId } = spawned.body as { agentId: string };

      // Sample the agent's containers for the whole test: never more than one at a time.
      let maxContainers = 0;
      const sampling = { on: true };
      const sampler = (async () => {
        while (sampling.on) {
          const containers = await instance.docker.listContainers({
            all: true,
            filters: { label: [`${AGENT_LABEL}=${agentId}`] },
          });
          maxContainers = Math.max(maxContainers, containers.length);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })();

      // Wait until the long shell command has started, then kill the worker without warning.
      await waitUntil(
        async () =>
          (await instance.prisma.toolCall.findFirst({ where: { agentId, name: 'bash', status: 'started' } })) !== null,
        30_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      workers[0]!.kill('SIGKILL');
      workers.push(
        startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url }),
      );

      const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
      sampling.on = false;
      await sampler;
      expect(final.state).toBe('completed');
      expect(maxContainers).toBe(1);

      // Each model turn was asked exactly once: no completed turn was repeated.
      const turns = model.requests.map((recorded) => recorded.turn);
      expect(turns).toEqual([0, 1, 2]);
      // The call went on in the sandbox while no worker watched it; the new worker re-attached and the model got its
      // real
      // outcome.
      expect(JSON.stringify(model.requests[2]!.body.messages.at(-1))).not.toContain(UNKNOWN_TOOL_OUTCOME);
      const calls = await instance.prisma.toolCall.findMany({ where: { agentId }, orderBy: { turn: 'asc' } });
      expect(calls.map((call) => [call.name, call.status, call.exitCode])).toEqual([
        [EDITOR, 'finished', 0],
        ['bash', 'finished', 0],
      ]);
      await withWorkspace(instance, agentId, async (workspace) => {
        // Run once, to its end.
        expect(await readFile(path.join(workspace, 'log.txt'), 'utf8')).toBe('started\nfinished\n');
        expect(await readFile(path.join(workspace, 'first.txt'), 'utf8')).toBe('written once\n');
      });
    },
  );
});
