import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { containersOf, sampleContainers, sandboxPaused, spawnWaitingForApproval } from '../helpers/chaos';
import { isMounted } from '../../sandbox-runtime/workspace';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, testConfig, type TestInstance } from '../helpers/instance';
import { startPrivateDocker, type PrivateDocker } from '../helpers/private-services';
import { startWorkerProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';

/**
 * The Docker engine restarts while an agent's tool runs in its sandbox. A private engine (its own
 * socket and data), so the other test files' sandboxes are untouched.
 */
describe(
  'chaos: the Docker engine restarted mid-run, hung while a worker tears ' + 'a sandbox down, or down at a launch',
  () => {
    const model = new FakeAnthropic(
      byWorkItem({
        'approve after Docker': byTurn([
          reply.toolUse({ name: 'bash', input: { command: 'echo ran >> gated.txt; git push 2>/dev/null || true' } }),
          reply.text('Done after the approval.'),
        ]),
        'survive Docker': byTurn([
          reply.toolUse({
            name: 'bash',
            input: { command: 'echo started >> log.txt; sleep 6; echo finished >> log.txt' },
          }),
          reply.text('Done despite Docker.'),
        ]),
      }),
    );
    let engine: PrivateDocker;
    let instance: TestInstance;
    let worker: ChildProcess | null = null;

    beforeAll(async () => {
      await model.start();
      engine = await startPrivateDocker(testConfig().SANDBOX_IMAGE);
      instance = await startTestInstance({ DOCKER_HOST: engine.dockerHost }, { worker: false });
    }, 300_000);
    afterAll(async () => {
      worker?.kill('SIGKILL');
      await instance.stop();
      await engine.destroy();
      await model.stop();
    }, 120_000);

    it(
      'keeps the sandbox running through the restart and completes the agent, ' +
        'its tool run once, nothing left behind',
      async () => {
        const { token } = await issueApiToken(instance.prisma, `docker-restart-${Date.now()}`);
        worker = startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
        const repository = await createRepository();
        const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers: bearer(token),
          json: {
            taskId: 'docker-restart',
            agentType: 'worker',
            context: { repository, branch: 'main', workItems: ['survive Docker'] },
          },
        });
        expect(spawned.status).toBe(202);
        const { agentId } = spawned.body as { agentId: string };
        const sampler = sampleContainers(instance.docker, agentId);

        // The command has started inside the sandbox (its workspace is mounted on the host while it runs).
        await waitUntil(
          () => Promise.resolve(existsSync(path.join(instance.config.DATA_DIR, 'workspaces', agentId, 'log.txt'))),
          60_000,
        );
        await engine.stop();
        await expect(instance.docker.ping()).rejects.toThrow(); // really down
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        await engine.start();

        const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
        expect(final.state).toBe('completed');
        expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
          state: 'completed',
        });
        expect(await sampler.stop()).toBe(1);
        const calls = await instance.prisma.toolCall.findMany({ where: { agentId } });
        // The engine's stream was lost, but the tool's process lived on in the sandbox: the worker re-attached and got
        // its
        // exit.
        expect(calls.map((call) => [call.status, call.exitCode])).toEqual([['finished', 0]]);
        expect(await containersOf(instance.docker, agentId)).toBe(0);
        await withWorkspace(instance, agentId, async (workspace) => {
          // Run once, to its end.
          expect(await readFile(path.join(workspace, 'log.txt'), 'utf8')).toBe('started\nfinished\n');
        });
      },
    );

    it(
      'finishes a teardown that the worker, killed while the engine hung, ' +
        'left undone: completed, no container, workspace unmounted',
      async () => {
        const { token } = await issueApiToken(instance.prisma, `docker-hung-teardown-${Date.now()}`);
        const settings = { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url };
        worker?.kill('SIGKILL');
        worker = startWorkerProcess(instance.config, settings);
        const repository = await createRepository();
        const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers: bearer(token),
          json: {
            taskId: 'hung-teardown',
            agentType: 'worker',
            context: { repository, branch: 'main', workItems: ['finish at once'] },
          },
        });
        const { agentId } = spawned.body as { agentId: string };

        // The result row is collect's last step: hang the engine right then, so the teardown that follows waits on it.
        await waitUntil(
          async () => (await instance.prisma.agentResult.count({ where: { agentId } })) === 1,
          60_000,
          10,
        );
        engine.freeze();
        const teardownStarted = async () =>
          ((await instance.temporal.workflow.getHandle(agentId).describe()).raw.pendingActivities ?? []).some(
            (activity) => activity.activityType?.name === 'teardownSandbox' && Boolean(activity.lastStartedTime),
          );
        await waitUntil(teardownStarted, 30_000);
        expect(await teardownStarted()).toBe(true);
        worker.kill('SIGKILL');
        engine.thaw();
        worker = startWorkerProcess(instance.config, settings);

        expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
        const history = (await instance.temporal.workflow.getHandle(agentId).fetchHistory()).events ?? [];
        const teardowns = history
          .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'teardownSandbox')
          .map((event) => Number(event.eventId));
        const attempts = history
          .filter((event) => teardowns.includes(Number(event.activityTaskStartedEventAttributes?.scheduledEventId)))
          .map((event) => event.activityTaskStartedEventAttributes?.attempt);
        expect(attempts).toEqual([2]); // the first attempt died with the worker
        expect(await containersOf(instance.docker, agentId)).toBe(0);
        expect(await isMounted(path.join(instance.config.DATA_DIR, 'workspaces', agentId))).toBe(false);
      },
    );

    it(
      'keeps the worker process alive when a launch finds the engine down, ' + 'and launches once the engine is back',
      async () => {
        const { token } = await issueApiToken(instance.prisma, `docker-down-launch-${Date.now()}`);
        worker?.kill('SIGKILL');
        const launching = startWorkerProcess(instance.config, {
          ANTHROPIC_API_KEY: 'test-key',
          ANTHROPIC_BASE_URL: model.url,
        });
        worker = launching;
        const repository = await createRepository();
        // The host is admitted while its last report is fresh: an agent spawned just after the engine stopped is
        // launched
        // into it.
        const reported = async (): Promise<boolean> =>
          (await instance.prisma.workerHost.count({
            where: { hostId: instance.config.HOST_ID, reportedAt: { gt: new Date(Date.now() - 5_000) } },
          })) > 0;
        await waitUntil(reported, 60_000);
        await engine.stop();
        const spawned = await request(instance.baseUrl, 'POST', '/agents/spawn', {
          headers: bearer(token),
          json: {
            taskId: 'docker-down-launch',
            agentType: 'worker',
            context: { repository, branch: 'main', workItems: ['finish at once'] },
            options: { maxRetries: 10 },
          },
        });
        expect(spawned.status).toBe(202);
        const { agentId } = spawned.body as { agentId: string };
        const launchAttempted = async (): Promise<boolean> =>
          ((await instance.temporal.workflow.getHandle(agentId).describe()).raw.pendingActivities ?? []).some(
            (activity) => activity.activityType?.name === 'launchSandbox' && (activity.attempt ?? 0) > 1,
          );
        await waitUntil(launchAttempted, 30_000);
        expect(await launchAttempted()).toBe(true);
        // A launch that failed while the engine was down ended the attempt, not the worker process.
        expect([launching.exitCode, launching.signalCode]).toEqual([null, null]);
        await engine.start();
        expect(((await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus).state).toBe('completed');
        expect([launching.exitCode, launching.signalCode]).toEqual([null, null]);
        expect(await containersOf(instance.docker, agentId)).toBe(0);
      },
    );

    it('keeps a sandbox that waits for an approval paused through the restart; it runs once approved', async () => {
      const { token } = await issueApiToken(instance.prisma, `docker-approval-${Date.now()}`);
      worker?.kill('SIGKILL');
      worker = startWorkerProcess(instance.config, { ANTHROPIC_API_KEY: 'test-key', ANTHROPIC_BASE_URL: model.url });
      const repository = await createRepository();
      const spawn = { taskId: 'docker-approval', repository, workItem: 'approve after Docker', match: 'git push' };
      const { agentId, toolCallId } = await spawnWaitingForApproval(instance, token, spawn);

      await engine.stop();
      await engine.start();
      // Live restore: the same container, still frozen, and the run still waits.
      expect(await sandboxPaused(instance.docker, agentId)).toBe(true);
      expect(await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).toMatchObject({
        state: 'input_required',
      });
      const approved = await request(instance.baseUrl, 'POST', `/agents/${agentId}/approvals/${toolCallId}`, {
        headers: bearer(token),
        json: { decision: 'approve' },
      });
      expect(approved.status).toBe(200);
      expect(await instance.temporal.workflow.getHandle(agentId).result()).toMatchObject({ state: 'completed' });
      await withWorkspace(instance, agentId, async (workspace) => {
        expect(await readFile(path.join(workspace, 'gated.txt'), 'utf8')).toBe('ran\n');
      });
    });
  },
);
