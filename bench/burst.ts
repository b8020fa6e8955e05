import { containerNameFor } from '../sandbox-runtime/agent-containers';
import type { ContainerEvents } from './docker-events';
import { acceptedAgentId, spawnBody, waitForState, type BenchInstance } from './harness';
import { WORK } from './bench-model';
import { bareBurst } from './bare-docker';
import { spawnProfile, type SpawnProfile } from './spawn-profile';
import { percentile } from './stats';

export interface BurstFigures {
  agents: number;
  /** First spawn request → the last agent's state running committed. */
  allRunningMs: number;
  spawnToRunningMs: number[];
  /** Spawn request → its answer (the API asks the admission workflow on the way): the admission phase. */
  answeredMs: number[];
  /** Kill requests for all → the engine destroyed the last container. */
  allGoneMs: number;
  /** Where the burst's spawns spent their time (median per phase). */
  profiles: SpawnProfile[];
  /** The engine alone: bare create+start of as many hardened containers at once, in the same run. */
  bareAllStartedMs: number;
  idleWorkerRssMb: number;
  liveWorkerRssMb: number;
  workerMbPerAgent: number;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The median of a few samples of the worker's resident memory, `intervalMs` apart. */
async function steadyRss(bench: BenchInstance, samples: number, intervalMs: number): Promise<number> {
  const seen: number[] = [];
  for (let index = 0; index < samples; index++) {
    seen.push(await bench.workerRssMb());
    await pause(intervalMs);
  }
  return percentile(seen, 50);
}

/** When each of these agents' state running was committed (ms since the epoch); throws when one ended first. */
async function runningTimes(bench: BenchInstance, agentIds: string[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await bench.instance.prisma.$queryRaw<Array<{ agent_id: string; state: string; at: Date }>>`
      SELECT agent_id, data->>'state' AS state, min(at) AS at FROM agent_events
      WHERE agent_id = ANY(${agentIds}) AND type = 'state' AND data->>'state'
        IN ('running', 'failed', 'killed', 'timed_out')
      GROUP BY agent_id, data->>'state'`;
    const ended = rows.find((row) => row.state !== 'running');
    if (ended) {
      const row = await bench.instance.prisma.agent.findUnique({
        where: { id: ended.agent_id },
        select: { error: true },
      });
      throw new Error(
        `agent ${ended.agent_id} ended ${ended.state} during the burst: ${row?.error ?? 'no error recorded'}`,
      );
    }
    if (rows.length === agentIds.length) return rows.map((row) => row.at.getTime());
    if (Date.now() > deadline)
      throw new Error(
        `${agentIds.length - rows.length} of ${agentIds.length} agents were not running after ${timeoutMs / 1000} s`,
      );
    await pause(200);
  }
}

/** Runs `work` over `items` with at most `parallel` at once. */
async function inParallel<T, R>(items: T[], parallel: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index] as T);
      }
    }),
  );
  return results;
}

/**
 * A burst of `count` spawns at once on a host whose capacity is at least `count`, the agents working
 * at a realistic pace (the scripted model thinks 0.5–2.5 s, tools run 2–5 s): how long until all run,
 * the worker's memory per live agent (against the same worker idle, after a warm-up), then all killed.
 */
export async function burst(
  bench: BenchInstance,
  events: ContainerEvents,
  repository: string,
  count: number,
): Promise<BurstFigures> {
  for (const warmUp of [0, 1]) {
    const agentId = acceptedAgentId(
      await bench.post('/agents/spawn', spawnBody(`warm-up-${warmUp}`, repository, WORK.realistic)),
    );
    await waitForState(bench.instance, agentId, 'running');
    await bench.post(`/agents/${agentId}/kill`);
    await waitForState(bench.instance, agentId, 'killed');
  }
  const idleWorkerRssMb = await steadyRss(bench, 5, 500);

  const requestedAt = Date.now();
  const requests = await Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const sentAt = Date.now();
      const agentId = acceptedAgentId(
        await bench.post('/agents/spawn', spawnBody(`burst-${index}`, repository, WORK.realistic)),
      );
      return { sentAt, answeredAt: Date.now(), agentId };
    }),
  );
  const agentIds = requests.map((sent) => sent.agentId);
  const runningAt = await runningTimes(bench, agentIds, 300_000);
  const allRunningMs = Math.max(...runningAt) - requestedAt;
  const liveWorkerRssMb = await steadyRss(bench, 10, 1_000);
  const profiles = await inParallel(requests, 10, async ({ agentId, sentAt }) => {
    const readyAt = await waitForState(bench.instance, agentId, 'running');
    return await spawnProfile(bench.instance.temporal, events, agentId, containerNameFor(agentId), sentAt, readyAt);
  });

  const killedAt = Date.now();
  await inParallel(agentIds, 20, (agentId) => bench.post(`/agents/${agentId}/kill`));
  const goneAt = await Promise.all(
    agentIds.map((agentId) => events.waitFor(containerNameFor(agentId), 'destroy', 300_000)),
  );
  for (const agentId of agentIds) await waitForState(bench.instance, agentId, 'killed');
  const bare = await bareBurst(
    bench.instance.docker,
    bench.instance.config.SANDBOX_IMAGE,
    bench.instance.config.SANDBOX_RUNTIME,
    count,
  );
  return {
    profiles,
    bareAllStartedMs: bare.allStartedMs,
    agents: count,
    allRunningMs,
    spawnToRunningMs: runningAt.map((at) => at - requestedAt),
    answeredMs: requests.map(({ sentAt, answeredAt }) => answeredAt - sentAt),
    allGoneMs: Math.max(...goneAt) - killedAt,
    idleWorkerRssMb: Math.round(idleWorkerRssMb * 10) / 10,
    liveWorkerRssMb: Math.round(liveWorkerRssMb * 10) / 10,
    workerMbPerAgent: Math.round(((liveWorkerRssMb - idleWorkerRssMb) / count) * 100) / 100,
  };
}
