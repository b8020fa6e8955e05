import { randomUUID } from 'node:crypto';
import { issueApiToken } from '../../api/auth';
import { AGENT_LABEL } from '../../sandbox-runtime/agent-containers';
import { byTurn, byWorkItem, FakeAnthropic, reply } from '../../scripts/scripted-model-server';
import { bearer } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/**
 * An agent that tries to get out, as a hostile one would: reach the network, read the worker's
 * environment and the model key, write outside its workspace, run code from /tmp, use privileges or
 * the Docker socket, fork without end, exhaust memory, fill the disk. Under runc always, and under
 * gVisor (runsc) wherever the engine has it (always in CI: the test command installs it there).
 */
const runtimes = (process.env.TEST_SANDBOX_RUNTIMES ?? 'runc').split(/\s+/).filter(Boolean);

const shell = (command: string) => reply.toolUse({ name: 'bash', input: { command } });
const PROBES = {
  network: shell(
    "python3 -c \"import socket; socket.create_connection(('8.8.8.8', 53), " +
      'timeout=3)" 2>&1 | tail -n 1; echo connect_rc=$?; getent hosts ' +
      'example.com || echo dns_failed; tail -n +3 /proc/net/dev | cut -d: -f1',
  ),
  secrets: shell('env; for f in /proc/[0-9]*/environ; do tr "\\0" "\\n" < "$f"; done 2>/dev/null; ls -a / /run 2>&1'),
  writes: shell(
    'for p in /etc/x /usr/x /x /var/x /workspace/../y ' +
      '/proc/sys/kernel/hostname; do echo probe > "$p" 2>/dev/null && echo ' +
      '"WROTE $p"; done; ls /etc/x /x /y 2>&1; echo inside > ' +
      '/workspace/inside && echo wrote_inside',
  ),
  exec: shell('cp /bin/true /tmp/t && /tmp/t; echo exec_rc=$?'),
  privileges: shell(
    'id -u; grep CapEff /proc/self/status; ls /var/run/docker.sock ' +
      '/run/docker.sock 2>&1; su -c id root </dev/null 2>&1 | tail -n 1',
  ),
  disk: shell('dd if=/dev/zero of=/workspace/fill bs=1M count=200 2>&1 | grep -c "No space left"'),
};
const FORK_BOMB = shell(
  'python3 -c "\nimport os, time\nn = 0\ntry:\n    while n < 3000:\n     ' +
    '   if os.fork() == 0:\n            time.sleep(3)\n            ' +
    "os._exit(0)\n        n += 1\n    print('forked', n)\nexcept OSError as " +
    "e:\n    print('fork refused after', n, e)\ntime.sleep(4)\n\"",
);
const model = new FakeAnthropic(
  byWorkItem({
    'try to escape': byTurn([...Object.values(PROBES), reply.text('Tried.')]),
    'fork without end': byTurn([FORK_BOMB, reply.text('Forked.')]),
    'exhaust memory': byTurn([
      shell('python3 -c "x = bytearray(1024 * 1024 * 1024)"; echo rc=$?'),
      reply.text('Exhausted.'),
    ]),
  }),
);

describe.each(runtimes)('a hostile agent under %s', (runtime) => {
  const modelKey = `sk-escape-${randomUUID()}`;
  let instance: TestInstance;
  let token: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: modelKey,
      ANTHROPIC_BASE_URL: model.url,
      SANDBOX_RUNTIME: runtime,
    });
    token = (await issueApiToken(instance.prisma, `escape-${runtime}-${Date.now()}`)).token;
    repository = await createRepository();
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  async function run(taskId: string, workItem: string, resources: Record<string, number> = {}) {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId,
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: [workItem] },
        options: { resources },
      },
    });
    expect(response.status).toBe(202);
    const { agentId } = response.body as { agentId: string };
    await instance.temporal.workflow
      .getHandle(agentId)
      .result()
      .catch(() => undefined);
    const row = await instance.prisma.agent.findUniqueOrThrow({ where: { id: agentId } });
    const calls = await instance.prisma.toolCall.findMany({ where: { agentId }, orderBy: { turn: 'asc' } });
    const containers = (
      await instance.docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${agentId}`] } })
    ).length;
    return { row, outputs: calls.map((call) => call.output ?? ''), containers };
  }

  it(
    'stays inside: no network, no secrets, no writes outside the workspace, ' +
      'no exec from /tmp, no privileges, a bounded disk',
    async () => {
      const { row, outputs, containers } = await run('escape', 'try to escape', { diskMb: 64 });
      expect(row.state).toBe('completed');
      expect(containers).toBe(0);
      const [network = '', secrets = '', writes = '', exec = '', privileges = '', disk = ''] = outputs;
      expect(network).toMatch(/unreachable|No route to host/);
      expect(network).toContain('dns_failed');
      expect(network.split('\n').filter((line) => /^\s*(eth|en|wl|docker|br)/.test(line))).toEqual([]);
      for (const secret of [modelKey, 'ANTHROPIC', 'DATABASE_URL', 'PRIVATE KEY', 'docker.sock'])
        expect([secret, secrets.includes(secret)]).toEqual([secret, false]);
      expect(writes).not.toContain('WROTE');
      expect(writes).toContain('wrote_inside');
      expect(exec).toContain('exec_rc=126');
      expect(privileges).toMatch(/^exit code \d+\n10001\nCapEff:\s+0000000000000000\n/);
      expect(privileges).toMatch(/cannot access '\/var\/run\/docker.sock'/);
      expect(privileges).toMatch(/cannot access '\/run\/docker.sock'/);
      expect(privileges).not.toMatch(/uid=0/);
      expect(disk).toMatch(/^exit code 0\n1\n/);
    },
  );

  it('contains a fork bomb: forks are refused or the sandbox ends, and the host goes on', async () => {
    const { row, outputs, containers } = await run('fork-bomb', 'fork without end');
    expect(containers).toBe(0);
    const contained =
      (row.state === 'completed' && /fork refused after \d+/.test(outputs[0] ?? '')) ||
      (row.state === 'failed' && /the sandbox stopped unexpectedly/.test(row.error ?? ''));
    expect([row.state, row.error, outputs[0]?.slice(0, 200), contained]).toEqual([
      row.state,
      row.error,
      outputs[0]?.slice(0, 200),
      true,
    ]);
  });

  it('reports memory exhaustion (an OOM kill, or under gVisor the end of the sandbox), never hangs', async () => {
    const { row, outputs, containers } = await run('memory', 'exhaust memory', { memoryMb: 64 });
    expect(containers).toBe(0);
    const reported =
      (row.state === 'completed' && /ran out of memory/.test(`${outputs[0] ?? ''} ${row.error ?? ''}`)) ||
      (row.state === 'failed' && /the sandbox stopped unexpectedly/.test(row.error ?? ''));
    expect([row.state, row.error, reported]).toEqual([row.state, row.error, true]);
  });

  it('still runs agents afterwards: the host stayed healthy', async () => {
    const { row } = await run('after', 'just finish');
    expect(row.state).toBe('completed');
    expect(String(await instance.docker.ping())).toBe('OK');
    const final = (await instance.prisma.agent.findMany({ where: { taskId: 'after' } })).map((agent) => agent.state);
    expect(final).toEqual(['completed']);
  });

  it('runs its sandboxes under the chosen runtime', async () => {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: bearer(token),
      json: {
        taskId: 'runtime',
        agentType: 'worker',
        context: { repository, branch: 'main', workItems: ['fork without end'] },
      },
    });
    const { agentId } = response.body as { agentId: string };
    let seen: string | undefined;
    for (let i = 0; i < 100 && seen === undefined; i++) {
      const [container] = await instance.docker.listContainers({
        all: true,
        filters: { label: [`${AGENT_LABEL}=${agentId}`] },
      });
      if (container) seen = (await instance.docker.getContainer(container.Id).inspect()).HostConfig.Runtime;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(seen).toBe(runtime);
    await instance.temporal.workflow
      .getHandle(agentId)
      .result()
      .catch(() => undefined);
    const status = (await instance.temporal.workflow.getHandle(agentId).describe()).status.name;
    expect(['COMPLETED', 'FAILED']).toContain(status);
  });
});
