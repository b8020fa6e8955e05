import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { issueApiToken } from '../../api/auth';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { execInContainer } from '../../sandbox-runtime/containers';
import { hardenedContainerSpec } from '../../sandbox-runtime/container-spec';
import { apparentSize } from '../../sandbox-runtime/quota-watchdog';
import { detectQuotaMode } from '../../sandbox-runtime/workspace';
import { pruneWorkspaces } from '../../sandbox-runtime/workspace-retention';
import { byTurn, byWorkItem, FakeAnthropic, reply, EDITOR } from '../../scripts/scripted-model-server';
import type { AgentStatus } from '../../workflows/agent-run/contract';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { sample } from '../helpers/metrics';
import { waitUntil } from '../helpers/wait';
import { withWorkspace } from '../helpers/workspace';

/** What confines an agent besides its container: the workspace's disk quota, file limits, tool inputs, cancellation. */
const model = new FakeAnthropic(
  byWorkItem({
    'fill the disk': byTurn([
      reply.toolUse({ name: 'bash', input: { command: 'dd if=/dev/zero of=small bs=1M count=8 2>&1 | tail -n 1' } }),
      reply.toolUse({ name: 'bash', input: { command: 'dd if=/dev/zero of=big bs=1M count=200' } }),
      reply.toolUse({ name: 'bash', input: { command: 'rm -f big; echo cleaned' } }),
      reply.text('Filled the disk.'),
    ]),
    'fill slowly': byTurn([
      reply.toolUse({
        name: 'bash',
        input: {
          command: 'for i in $(seq 1 60); do dd if=/dev/zero of=f$i bs=1M count=4 2>/dev/null; sleep 0.5; done',
        },
      }),
    ]),
    // A writer left in the background keeps writing while the model thinks, between tool calls.
    'write in the background': byTurn([
      reply.toolUse({
        name: 'bash',
        input: {
          command:
            'nohup sh -c "for i in 1 2 3 4 5 6; do dd if=/dev/zero of=bg\\$i bs=1M ' +
            'count=500; done" >/dev/null 2>&1 & echo started',
        },
      }),
      { ...reply.toolUse({ name: 'bash', input: { command: 'ls -la' } }), delayMs: 10_000 },
      reply.text('Never here.'),
    ]),
    'show limits': byTurn([
      reply.toolUse({ name: 'bash', input: { command: 'echo nofile=$(ulimit -n) fsize=$(ulimit -f)' } }),
      reply.text('Shown.'),
    ]),
    'odd paths': byTurn([
      reply.toolUse(
        { name: EDITOR, input: { command: 'view', path: '-delete' } },
        { name: EDITOR, input: { command: 'view', path: '--help' } },
        { name: 'search_files', input: { pattern: 'x', path: '-r' } },
      ),
      reply.text('Looked.'),
    ]),
    'write big': byTurn([
      // A file and an old text each larger than one argv string may be (128 KiB), within what fits a context window.
      reply.toolUse({
        name: EDITOR,
        input: {
          command: 'create',
          path: 'big.txt',
          file_text: `${'a'.repeat(300 * 1024)}\nUNIQUE${'b'.repeat(150_000)}\n`,
        },
      }),
      reply.toolUse({
        name: EDITOR,
        input: {
          command: 'str_replace',
          path: 'big.txt',
          old_str: `UNIQUE${'b'.repeat(150_000)}`,
          new_str: `CHANGED${'c'.repeat(10)}`,
        },
      }),
      reply.text('Wrote a big file.'),
    ]),
  }),
);

describe('sandbox limits', () => {
  let instance: TestInstance;
  let watched: TestInstance;
  let token: string;
  let watchedToken: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      WORKSPACE_MAX_MB: '256',
    });
    watched = await startTestInstance({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: model.url,
      WORKSPACE_QUOTA: 'watchdog',
    });
    token = (await issueApiToken(instance.prisma, `limits-${Date.now()}`)).token;
    watchedToken = (await issueApiToken(watched.prisma, `watched-${Date.now()}`)).token;
    repository = await createRepository({ 'README.md': '# Limits\n', 'keep.txt': 'keep me\n' });
  });
  afterAll(async () => {
    await instance.stop();
    await watched.stop();
    await model.stop();
  });

  async function run(
    target: TestInstance,
    bearerToken: string,
    taskId: string,
    workItem: string,
    resources: Record<string, number> = {},
    agentType = 'worker',
  ): Promise<{ agentId: string; final: AgentStatus | null }> {
    const response = await request(target.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(bearerToken),
      json: {
        taskId,
        agentType,
        context: { repository, branch: 'main', workItems: [workItem] },
        options: { resources },
      },
    });
    expect(response.status).toBe(202);
    const { agentId } = response.body as { agentId: string };
    const final = (await target.temporal.workflow
      .getHandle(agentId)
      .result()
      .catch(() => null)) as AgentStatus | null;
    return { agentId, final };
  }
  const outputs = async (target: TestInstance, agentId: string) =>
    (
      await target.prisma.toolCall.findMany({ where: { agentId }, orderBy: [{ turn: 'asc' }, { startedAt: 'asc' }] })
    ).map((call) => call.output ?? '');

  it('uses an ext4 image per workspace on this host (root, loop devices)', async () => {
    expect(await detectQuotaMode()).toBe('loop');
  });

  it('fails writes past the workspace quota and says so, without touching the host’s disk', async () => {
    const { agentId, final } = await run(instance, token, 'quota', 'fill the disk', { diskMb: 64 });
    expect(final?.state).toBe('completed');
    const [small, big, cleaned] = await outputs(instance, agentId);
    expect(small).toMatch(/8388608 bytes/); // the valid twin: a write under the quota
    expect(big).toMatch(/No space left on device/);
    expect(big).toMatch(/The workspace is full: it reached its disk quota of 64 MB/);
    expect(cleaned).toMatch(/cleaned/); // the agent went on
    expect(final?.error).toBe('the workspace reached its disk quota: writes fail');
    expect((await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } })).error).toBe(
      'the workspace reached its disk quota: writes fail',
    );
    // The 200 MB write stopped inside the 64 MB image (host free space is not measured: parallel suites move it).
    expect(Number(/(\d+) bytes/.exec(big ?? '')?.[1])).toBeLessThan(64 * 1024 * 1024);
    // The workspace stays as an image, unmounted, with the agent's result, and the host holds no more than that image.
    const image = statSync(path.join(instance.config.DATA_DIR, 'workspaces', `${agentId}.img`));
    expect(image.size).toBe(64 * 1024 * 1024);
    expect(image.blocks * 512).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(await withWorkspace(instance, agentId, (dir) => Promise.resolve(existsSync(path.join(dir, 'small'))))).toBe(
      true,
    );
  });

  it('stops a run that writes past its quota where the quota is only watched', async () => {
    const { agentId, final } = await run(watched, watchedToken, 'watched-quota', 'fill slowly', { diskMb: 32 });
    expect(final).toBeNull();
    const row = await watched.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row).toMatchObject({
      state: 'failed',
      error: 'the workspace went past its disk quota of 32 MB: the run was stopped',
    });
    expect(
      await watched.docker
        .getContainer(containerNameFor(agentId))
        .inspect()
        .catch(() => null),
    ).toBeNull();
  });

  it('stops a background writer between tool calls where the quota is only watched, soon after the quota', async () => {
    const breaches = async (): Promise<number> =>
      sample(await (await fetch(watched.workerMetricsUrl)).text(), 'orchestrator_quota_breaches_total');
    const before = await breaches();
    const { agentId, final } = await run(watched, watchedToken, 'watched-background', 'write in the background');
    expect(final).toBeNull();
    const row = await watched.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    expect(row.state).toBe('failed');
    expect(row.error).toMatch(/went past its disk quota/);
    // The first call only started the writer; the run was stopped before the second one ran.
    expect((await watched.prisma.toolCall.findMany({ where: { agentId } })).map((call) => call.status)).toEqual([
      'finished',
      'cancelled',
    ]);
    const quotaBytes = 1024 * 1024 * 1024;
    const used = await apparentSize(path.join(watched.config.DATA_DIR, 'workspaces', agentId));
    expect(used).toBeGreaterThan(quotaBytes);
    // Here the worker shares the test's process and both cores with other test files, so its timers run
    // late: the bound is looser than the one a worker process of its own keeps (quota-watchdog.ts).
    expect(used).toBeLessThanOrEqual(quotaBytes * 1.5);
    expect(
      await watched.docker
        .getContainer(containerNameFor(agentId))
        .inspect()
        .catch(() => null),
    ).toBeNull();
    expect(await breaches()).toBe(before + 1);
  });

  it('refuses a quota beyond the instance’s bound before anything starts', async () => {
    const agents = await instance.prisma.agent.count();
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId: 'too-big',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['x'] },
        options: { resources: { diskMb: 1024 } },
      },
    });
    expect([response.status, errorCode(response)]).toEqual([400, 'resource_limit']);
    expect(await instance.prisma.agent.count()).toBe(agents);
  });

  it('gives the sandbox open-file and file-size limits', async () => {
    const { agentId, final } = await run(instance, token, 'limits', 'show limits', { diskMb: 64 });
    expect(final?.state).toBe('completed');
    // bash reports the file-size limit in blocks of 1024 bytes: 64 MB.
    expect((await outputs(instance, agentId))[0]).toContain(`nofile=4096 fsize=${(64 * 1024 * 1024) / 1024}`);
  });

  it('never takes a path that starts with "-" for an option', async () => {
    // A reviewer: it has search_files, and its editor views.
    const { agentId, final } = await run(instance, token, 'odd-paths', 'odd paths', {}, 'reviewer');
    expect(final?.state).toBe('completed');
    const [listed, read, searched] = await outputs(instance, agentId);
    // The editor takes its path from JSON, never from argv: "-delete" is a file that does not exist.
    expect(listed).toBe('The path /workspace/-delete does not exist.');
    expect(read).toBe('The path /workspace/--help does not exist.');
    expect(searched).toMatch(/No such file or directory/);
    expect(
      await withWorkspace(instance, agentId, (dir) => Promise.resolve(existsSync(path.join(dir, 'keep.txt')))),
    ).toBe(true);
  });

  it('writes and edits files larger than an argument may be (contents go through stdin, not argv)', async () => {
    const { agentId, final } = await run(instance, token, 'big-write', 'write big');
    expect(final?.state).toBe('completed');
    const [written, edited] = await outputs(instance, agentId);
    expect(written).toBe('File created successfully at: /workspace/big.txt\n');
    expect(edited).toBe('The file /workspace/big.txt has been edited.\n');
    const content = await withWorkspace(
      instance,
      agentId,
      async (dir) => await readFile(path.join(dir, 'big.txt'), 'utf8'),
    );
    expect(content.length).toBe(300 * 1024 + '\nCHANGEDcccccccccc\n'.length);
    expect(content.endsWith('a\nCHANGEDcccccccccc\n')).toBe(true);
  });

  it('ends a cancelled command’s processes inside the container, not only its stream', async () => {
    const name = `cancel-${randomUUID()}`;
    const workspace = path.join(instance.config.DATA_DIR, 'cancel-workspace');
    await mkdir(workspace, { recursive: true });
    const container = await instance.docker.createContainer(
      hardenedContainerSpec({
        name,
        image: instance.config.SANDBOX_IMAGE,
        command: ['sleep', 'infinity'],
        workflowId: name,
        instance: 'cancel-test',
        workspaceHostPath: workspace,
      }),
    );
    await container.start();
    try {
      const processes = async () =>
        (
          await execInContainer(instance.docker, name, ['sh', '-c', 'ps -eo args | grep -cx "sleep 271"'], {
            timeoutMs: 10_000,
            maxOutputBytes: 1024,
          })
        ).stdout.trim();
      const stop = new AbortController();
      const running = execInContainer(instance.docker, name, ['sh', '-c', 'sleep 271 & sleep 271; wait'], {
        timeoutMs: 600_000,
        maxOutputBytes: 1024,
        signal: stop.signal,
      });
      await waitUntil(async () => (await processes()) === '2', 10_000);
      expect(await processes()).toBe('2');
      stop.abort();
      await expect(running).rejects.toThrow();
      await waitUntil(async () => (await processes()) === '0', 10_000);
      expect(await processes()).toBe('0');
    } finally {
      await container.remove({ force: true });
    }
  });

  it('removes workspaces past their retention, and never a live agent’s', async () => {
    const dir = path.join(instance.config.DATA_DIR, 'retention');
    const { workspaceId } = await issueApiToken(instance.prisma, `retention-${Date.now()}`);
    const day = 24 * 3600 * 1000;
    const agents = {
      old: `agent-${randomUUID()}`,
      recent: `agent-${randomUUID()}`,
      live: `agent-${randomUUID()}`,
      orphanOld: `agent-${randomUUID()}`,
      orphanNew: `agent-${randomUUID()}`,
    };
    const row = (id: string, state: string, finishedAt: Date | null) => ({
      id,
      workspaceId,
      taskId: id,
      agentType: 'worker',
      state,
      context: {},
      options: {},
      finishedAt,
    });
    await instance.prisma.agent.createMany({
      data: [
        row(agents.old, 'completed', new Date(Date.now() - 8 * day)),
        row(agents.recent, 'completed', new Date(Date.now() - 3600_000)),
        row(agents.live, 'running', null),
      ],
    });
    for (const id of Object.values(agents)) {
      await mkdir(path.join(dir, id), { recursive: true });
      await writeFile(path.join(dir, `${id}.img`), '');
    }
    const old = new Date(Date.now() - 8 * day);
    await utimes(path.join(dir, `${agents.orphanOld}.img`), old, old);
    const removed = await pruneWorkspaces({
      docker: instance.docker,
      prisma: instance.prisma,
      workspacesDir: dir,
      retentionHours: 168,
    });
    expect(removed.sort()).toEqual([agents.old, agents.orphanOld].sort());
    for (const [name, id] of Object.entries(agents))
      expect([name, existsSync(path.join(dir, id))]).toEqual([name, !removed.includes(id)]);
  });
});
