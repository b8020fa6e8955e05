import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerInfo } from 'dockerode';
import { issueApiToken } from '../../api/auth';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { containerNameOf as nameOf } from '../../sandbox-runtime/containers';
import { instanceLabel, reconcileSandboxes } from '../../workers/jobs/sandbox-reconciler';
import { hardenedContainerSpec, SANDBOX_LABEL_INSTANCE } from '../../sandbox-runtime/container-spec';
import { POOL_LABEL, POOL_SLOT_LABEL } from '../../sandbox-runtime/warm-pool';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { byTurn, byWorkItem, FakeAnthropic, reply, EDITOR } from '../../scripts/scripted-model-server';
import { bearer } from '../helpers/federation';
import { createRepository, git } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';

/**
 * The warm pool (WARM_POOL_SIZE): sandboxes started ahead of demand that a spawn claims; never given
 * to a second agent, counted against the host's capacity, known to the reconciler.
 */
describe('the warm sandbox pool', () => {
  const model = new FakeAnthropic(
    byWorkItem({
      'write a file': byTurn([
        reply.toolUse({
          name: EDITOR,
          input: { command: 'create', path: 'warm.txt', file_text: 'written in a warm sandbox\n' },
        }),
        reply.text('Wrote it.'),
      ]),
      hold: byTurn([reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } })]),
    }),
  );
  let instance: TestInstance;
  let token: string;
  let repository: string;
  let mine: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: '3',
      WARM_POOL_SIZE: '2',
    });
    ({ token } = await issueApiToken(instance.prisma, `warm-pool-${Date.now()}`));
    repository = await createRepository();
    mine = instanceLabel(instance.config.TEMPORAL_NAMESPACE, instance.config.TASK_QUEUE);
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const sandboxes = async (): Promise<ContainerInfo[]> =>
    await instance.docker.listContainers({ all: true, filters: { label: [`${SANDBOX_LABEL_INSTANCE}=${mine}`] } });
  const warm = async (): Promise<ContainerInfo[]> =>
    (await sandboxes()).filter((container) => container.State === 'running' && nameOf(container).startsWith('pool-'));
  const waitForWarm = async (count: number): Promise<ContainerInfo[]> => {
    await waitUntil(async () => (await warm()).length === count, 30_000);
    const ready = await warm();
    expect(ready).toHaveLength(count);
    return ready;
  };
  async function spawn(taskId: string, workItem: string, options: Record<string, unknown> = {}): Promise<string> {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] }, options },
    });
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  }
  const kill = async (agentId: string): Promise<void> => {
    expect(
      (await request(instance.baseUrl, 'POST', `/agents/${agentId}/kill`, { headers: bearer(token) })).status,
    ).toBe(202);
    await instance.temporal.workflow.getHandle(agentId).result();
  };

  it('a spawn claims a warm sandbox, works in it, and the used one is destroyed, never reused', async () => {
    const before = await waitForWarm(2);
    const agentId = await spawn('warm', 'write a file');
    const final = (await instance.temporal.workflow.getHandle(agentId).result()) as AgentStatus;
    expect(final.state).toBe('completed');

    // Its sandbox was one of the warm ones: the engine's record of the agent's container (create event) predates the
    // spawn.
    const events = (await instance.prisma.agentEvent.findMany({ where: { agentId }, orderBy: { seq: 'asc' } })).map(
      (event) => event.data as { state?: string },
    );
    expect(events.map((event) => event.state).filter(Boolean)).toEqual(['spawning', 'running', 'completed']);
    const result = await request(instance.baseUrl, 'GET', `/agents/${agentId}/status`, { headers: bearer(token) });
    const view = result.body as { result: { branch: string; commitSha: string; diff: string } };
    expect(view.result.diff).toContain('+written in a warm sandbox');
    // The workspace (a link to the claimed slot) holds the result branch for inspection.
    await withWorkspace(instance, agentId, async (workspace) => {
      expect(await git(workspace, 'rev-parse', `agent/${agentId}`)).toBe(view.result.commitSha);
      expect(await readFile(path.join(workspace, 'warm.txt'), 'utf8')).toBe('written in a warm sandbox\n');
    });

    // The claimed container is gone (torn down, not returned), and the pool has two new ones.
    const claimed = before.map((container) => container.Id);
    const after = await waitForWarm(2);
    const stillThere = (await sandboxes()).map((container) => container.Id);
    expect(claimed.filter((id) => stillThere.includes(id))).toHaveLength(1);
    expect(after.map((container) => container.Id).filter((id) => !claimed.includes(id))).toHaveLength(1);
    expect(
      await instance.docker
        .getContainer(containerNameFor(agentId))
        .inspect()
        .catch(() => null),
    ).toBeNull();
  });

  it(
    'counts against the capacity: agents and warm sandboxes never exceed ' + 'it, other limits launch without the pool',
    async () => {
      await waitForWarm(2);
      let most = 0;
      const sampling = { on: true };
      const sampler = (async () => {
        while (sampling.on) {
          most = Math.max(most, (await sandboxes()).length);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      const first = await spawn('hold-1', 'hold');
      const second = await spawn('hold-2', 'hold');
      // Other limits than the pool's: a sandbox of its own, after a warm one made room (3 agents on a host of 3).
      const third = await spawn('hold-3', 'hold', { resources: { memoryMb: 512 } });
      await waitUntil(
        async () =>
          (await instance.prisma.agent.count({ where: { id: { in: [first, second, third] }, state: 'running' } })) ===
          3,
        30_000,
      );
      const running = await sandboxes();
      expect(running.map(nameOf).sort()).toEqual([first, second, third].map(containerNameFor).sort());
      const byName = new Map(running.map((container) => [nameOf(container), container]));
      expect(byName.get(containerNameFor(first))?.Labels[POOL_LABEL]).toBe(instance.config.HOST_ID);
      expect(byName.get(containerNameFor(second))?.Labels[POOL_LABEL]).toBe(instance.config.HOST_ID);
      expect(byName.get(containerNameFor(third))?.Labels[POOL_LABEL]).toBeUndefined();
      const memory = (await instance.docker.getContainer(containerNameFor(third)).inspect()).HostConfig.Memory;
      expect(memory).toBe(512 * 1024 * 1024);

      await Promise.all([first, second, third].map(kill));
      await waitForWarm(2);
      sampling.on = false;
      await sampler;
      expect(most).toBeLessThanOrEqual(3);
    },
  );

  it(
    'the reconciler keeps the pool’s warm sandboxes and removes one an ' + 'earlier worker left, with its slot',
    async () => {
      const owned = (await waitForWarm(2)).map(nameOf);
      const slot = path.join(instance.dataDir, 'warm-pool', 'left-behind');
      const spec = hardenedContainerSpec({
        name: `pool-left-behind-${Date.now()}`,
        image: instance.config.SANDBOX_IMAGE,
        command: ['sleep', 'infinity'],
        workflowId: '',
        instance: mine,
        workspaceHostPath: slot,
        labels: { [POOL_LABEL]: instance.config.HOST_ID, [POOL_SLOT_LABEL]: slot },
      });
      await (await instance.docker.createContainer(spec)).start();
      // The pool vouches for its own; the stray one (no pool owns it) goes, with its slot workspace.
      const result = await reconcileSandboxes(
        instance.docker,
        instance.temporal,
        mine,
        path.join(instance.dataDir, 'workspaces'),
        { owns: (name) => owned.includes(name) },
      );
      expect(result.removed).toEqual([spec.name]);
      expect(result.kept.sort()).toEqual([...owned].sort());
      expect(await stat(slot).catch(() => null)).toBeNull();
      expect((await warm()).map(nameOf).sort()).toEqual([...owned].sort());
    },
  );
});
