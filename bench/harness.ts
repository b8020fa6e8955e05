import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { issueApiToken } from '../api/auth';
import { instanceLabel } from '../workers/jobs/sandbox-reconciler';
import { containerNameOf } from '../sandbox-runtime/containers';
import { SANDBOX_LABEL_INSTANCE } from '../sandbox-runtime/container-spec';
import { isUnclaimedPoolContainer, POOL_LABEL } from '../sandbox-runtime/warm-pool';
import type { FakeAnthropic } from '../scripts/scripted-model-server';
import { bearer } from '../tests/helpers/federation';
import { request, type JsonResponse } from '../tests/helpers/http';
import { startTestInstance, type TestInstance } from '../tests/helpers/instance';
import { startWorkerProcess } from '../tests/helpers/processes';
import { waitUntil } from '../tests/helpers/wait';

/**
 * An instance as the benchmark measures it: the API in this process, the worker as its own process
 * (dist/workers/main.js, so its memory is its own), on the run's Temporal dev server and PostgreSQL,
 * against the scripted Messages API.
 */
export interface BenchInstance {
  instance: TestInstance;
  worker: ChildProcess;
  token: string;
  post(path: string, json?: unknown): Promise<JsonResponse>;
  get(path: string): Promise<JsonResponse>;
  /** The worker process's resident memory, in MB. */
  workerRssMb(): Promise<number>;
  stop(): Promise<void>;
}

export async function startBenchInstance(
  model: FakeAnthropic,
  settings: Record<string, string> = {},
): Promise<BenchInstance> {
  const modelSettings = { ANTHROPIC_API_KEY: 'bench-key', ANTHROPIC_BASE_URL: model.url };
  const instance = await startTestInstance({ ...modelSettings, ...settings }, { worker: false });
  const worker = startWorkerProcess(instance.config, { ...modelSettings, ...settings });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  // Ready once the worker has reported its host (the admission workflow then knows its capacity).
  await waitUntil(
    async () => (await instance.prisma.workerHost.findUnique({ where: { hostId: instance.config.HOST_ID } })) !== null,
    60_000,
    50,
  );
  if (!(await instance.prisma.workerHost.findUnique({ where: { hostId: instance.config.HOST_ID } })))
    throw new Error('the worker process did not report its host within a minute');
  const { token } = await issueApiToken(instance.prisma, `bench-${Date.now()}`);
  return {
    instance,
    worker,
    token,
    post: (path, json) =>
      request(instance.baseUrl, 'POST', path, { headers: bearer(token), ...(json === undefined ? {} : { json }) }),
    get: (path) => request(instance.baseUrl, 'GET', path, { headers: bearer(token) }),
    async workerRssMb() {
      const status = await readFile(`/proc/${worker.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
    },
    async stop() {
      worker.kill('SIGTERM');
      // A worker that has not drained within the shutdown grace time and some is ended.
      const drained = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000)),
      ]);
      if (!drained) {
        worker.kill('SIGKILL');
        await exited;
      }
      await removeInstanceContainers(
        instance.docker,
        instanceLabel(instance.config.TEMPORAL_NAMESPACE, instance.config.TASK_QUEUE),
      );
      await instance.stop();
    },
  };
}

/** Whatever sandboxes an instance left (agents the benchmark did not wait for). */
export async function removeInstanceContainers(docker: Docker, instance: string): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${SANDBOX_LABEL_INSTANCE}=${instance}`] },
  });
  await Promise.all(
    containers.map((container) =>
      docker
        .getContainer(container.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

/** Waits until the instance's warm pool holds `size` started sandboxes. */
export async function waitForWarmPool(bench: BenchInstance, size: number): Promise<void> {
  const instance = instanceLabel(bench.instance.config.TEMPORAL_NAMESPACE, bench.instance.config.TASK_QUEUE);
  const warm = async (): Promise<number> =>
    (
      await bench.instance.docker.listContainers({
        filters: { label: [`${SANDBOX_LABEL_INSTANCE}=${instance}`, POOL_LABEL] },
      })
    ).filter((container) => isUnclaimedPoolContainer(containerNameOf(container))).length;
  await waitUntil(async () => (await warm()) >= size, 60_000, 20);
  if ((await warm()) < size) throw new Error(`the warm pool did not reach ${size} sandboxes within a minute`);
}

/**
 * When an agent's state change to `state` was committed (the event log's time), in ms since the epoch; null until then.
 */
export async function stateReachedAt(instance: TestInstance, agentId: string, state: string): Promise<number | null> {
  const rows = await instance.prisma.$queryRaw<
    Array<{ at: Date }>
  >`SELECT at FROM agent_events WHERE agent_id = ${agentId} AND type = 'state'
    AND data->>'state' = ${state} ORDER BY seq LIMIT 1`;
  return rows[0]?.at.getTime() ?? null;
}

/** Waits (polling every 10 ms) until the agent reached `state`, and answers when it did. */
export async function waitForState(
  instance: TestInstance,
  agentId: string,
  state: string,
  timeoutMs = 120_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const at = await stateReachedAt(instance, agentId, state);
    if (at !== null) return at;
    if (Date.now() > deadline) {
      const row = await instance.prisma.agent.findUnique({
        where: { id: agentId },
        select: { state: true, error: true },
      });
      throw new Error(
        `agent ${agentId} did not reach ${state} within ${timeoutMs} ms (it is ` +
          `${row?.state ?? 'unknown'}${row?.error ? `: ${row.error}` : ''})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the agent's first tool call runs (its sandbox is busy), so that a kill lands mid-tool. */
export async function waitForRunningTool(instance: TestInstance, agentId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await instance.prisma.toolCall.count({ where: { agentId, status: 'started' } })) === 0) {
    if (Date.now() > deadline) throw new Error(`agent ${agentId} started no tool within a minute`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const spawnBody = (taskId: string, repository: string, workItem: string): Record<string, unknown> => ({
  taskId,
  agentType: 'worker',
  context: { repository, branch: 'main', workItems: [workItem] },
});

/** The agentId of an accepted spawn (202), or a clear error. */
export function acceptedAgentId(response: JsonResponse): string {
  if (response.status !== 202 && response.status !== 200)
    throw new Error(`spawn refused: ${response.status} ${response.text}`);
  const body = response.body as { agentId?: string; data?: { agentId: string } };
  const agentId = body.agentId ?? body.data?.agentId;
  if (!agentId) throw new Error(`spawn answered without an agent id: ${response.text}`);
  return agentId;
}
