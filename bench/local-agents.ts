import { hashToken } from '../api/auth';
import { AGENT_ROW_INCLUDE } from '../domain/agents/agent-service';
import { containerNameFor } from '../sandbox-runtime/agent-containers';
import { agentStatusQuery } from '../workflows/agent-run/contract';
import { bareCreateStart } from './bare-docker';
import type { ContainerEvents } from './docker-events';
import { acceptedAgentId, spawnBody, waitForRunningTool, waitForState, type BenchInstance } from './harness';
import { WORK } from './bench-model';
import { spawnProfile, type SpawnProfile } from './spawn-profile';

export interface SpawnKillSamples {
  spawnToReadyMs: number[];
  killToGoneMs: number[];
  profiles: SpawnProfile[];
}

export interface BaselineSamples {
  createStartMs: number[];
  removeMs: number[];
}

/**
 * One agent at a time: spawn → ready (state running committed), then kill while its tool runs →
 * container destroyed (the engine's event). Waits for the kill to be recorded before the next one.
 */
export async function spawnAndKill(
  bench: BenchInstance,
  events: ContainerEvents,
  repository: string,
  label: string,
): Promise<{ spawnToReadyMs: number; killToGoneMs: number; profile: SpawnProfile }> {
  const requestedAt = Date.now();
  const agentId = acceptedAgentId(await bench.post('/agents/spawn', spawnBody(label, repository, WORK.hold)));
  const readyAt = await waitForState(bench.instance, agentId, 'running');
  await waitForRunningTool(bench.instance, agentId);
  const killedAt = Date.now();
  const kill = await bench.post(`/agents/${agentId}/kill`);
  if (kill.status !== 202) throw new Error(`kill refused: ${kill.status} ${kill.text}`);
  const goneAt = await events.waitFor(containerNameFor(agentId), 'destroy');
  await waitForState(bench.instance, agentId, 'killed');
  const profile = await spawnProfile(
    bench.instance.temporal,
    events,
    agentId,
    containerNameFor(agentId),
    requestedAt,
    readyAt,
  );
  return { spawnToReadyMs: readyAt - requestedAt, killToGoneMs: goneAt - killedAt, profile };
}

/**
 * `count` spawn-and-kill rounds, each followed by its baseline (bare create+start and remove of the
 * same hardened container), interleaved so that both see the same machine.
 */
export async function spawnKillRounds(
  bench: BenchInstance,
  events: ContainerEvents,
  repository: string,
  count: number,
  prefix: string,
  beforeEach: () => Promise<void> = () => Promise.resolve(),
): Promise<{ ours: SpawnKillSamples; baseline: BaselineSamples }> {
  const ours: SpawnKillSamples = { spawnToReadyMs: [], killToGoneMs: [], profiles: [] };
  const baseline: BaselineSamples = { createStartMs: [], removeMs: [] };
  const { SANDBOX_IMAGE, SANDBOX_RUNTIME } = bench.instance.config;
  for (let round = 0; round < count; round++) {
    await beforeEach();
    const sample = await spawnAndKill(bench, events, repository, `${prefix}-${round}`);
    ours.spawnToReadyMs.push(sample.spawnToReadyMs);
    ours.killToGoneMs.push(sample.killToGoneMs);
    ours.profiles.push(sample.profile);
    const bare = await bareCreateStart(
      bench.instance.docker,
      SANDBOX_IMAGE,
      SANDBOX_RUNTIME,
      `bench-bare-${prefix}-${round}-${Date.now()}`,
    );
    baseline.createStartMs.push(bare.createStartMs);
    baseline.removeMs.push(bare.removeMs);
  }
  return { ours, baseline };
}

/**
 * Status of a live agent through the API (GET /agents/:id/status: row + workflow query) against a bare Temporal query
 * of the same workflow.
 */
export async function statusQueryLatency(
  bench: BenchInstance,
  repository: string,
  count: number,
): Promise<{ apiMs: number[]; bareQueryMs: number[]; readsMs: number[] }> {
  const agentId = acceptedAgentId(await bench.post('/agents/spawn', spawnBody('status-query', repository, WORK.hold)));
  await waitForState(bench.instance, agentId, 'running');
  const handle = bench.instance.temporal.workflow.getHandle(agentId);
  const apiMs: number[] = [];
  const bareQueryMs: number[] = [];
  const readsMs: number[] = []; // the database reads a status makes before its query: the token, then the row
  const { prisma } = bench.instance;
  for (let round = 0; round < count; round++) {
    let started = performance.now();
    const response = await bench.get(`/agents/${agentId}/status`);
    if (response.status !== 200) throw new Error(`status answered ${response.status}`);
    apiMs.push(performance.now() - started);
    started = performance.now();
    await handle.query(agentStatusQuery);
    bareQueryMs.push(performance.now() - started);
    started = performance.now();
    await prisma.apiToken.findUnique({ where: { tokenHash: hashToken(bench.token) } });
    await prisma.agent.findUnique({ where: { id: agentId }, include: AGENT_ROW_INCLUDE });
    readsMs.push(performance.now() - started);
  }
  await bench.post(`/agents/${agentId}/kill`);
  await waitForState(bench.instance, agentId, 'killed');
  return { apiMs, bareQueryMs, readsMs };
}

const historyLength = async (bench: BenchInstance, agentId: string): Promise<number> =>
  (await bench.instance.temporal.workflow.getHandle(agentId).describe()).historyLength;

/**
 * Workflow history events per agent turn (a run of `turns` tool turns against a run that is done
 * at once), and per minute an agent waits in the queue (all of the host's slots held meanwhile).
 */
export async function historyGrowth(
  bench: BenchInstance,
  repository: string,
  turns: number,
  queuedMs: number,
): Promise<{ eventsPerTurn: number; eventsPerQueuedMinute: number; queuedForMs: number }> {
  const run = async (count: number): Promise<number> => {
    const agentId = acceptedAgentId(
      await bench.post('/agents/spawn', spawnBody(`turns-${count}`, repository, WORK.turns(count))),
    );
    await bench.instance.temporal.workflow.getHandle(agentId).result();
    return await historyLength(bench, agentId);
  };
  const short = await run(0);
  const long = await run(turns);

  const capacity = bench.instance.config.MAX_CONCURRENT_AGENTS;
  const holders: string[] = [];
  for (let index = 0; index < capacity; index++)
    holders.push(
      acceptedAgentId(await bench.post('/agents/spawn', spawnBody(`holder-${index}`, repository, WORK.hold))),
    );
  for (const holder of holders) await waitForState(bench.instance, holder, 'running');
  const waiter = acceptedAgentId(await bench.post('/agents/spawn', spawnBody('queued', repository, WORK.hold)));
  await waitForState(bench.instance, waiter, 'queued');
  // Counted from when the workflow has settled into waiting (its queued state recorded, no activity pending).
  let before = -1;
  for (;;) {
    const description = await bench.instance.temporal.workflow.getHandle(waiter).describe();
    if ((description.raw.pendingActivities ?? []).length === 0 && description.historyLength === before) break;
    before = description.historyLength;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, queuedMs));
  const after = await historyLength(bench, waiter);
  const queuedForMs = Date.now() - started;
  for (const agentId of [waiter, ...holders]) await bench.post(`/agents/${agentId}/kill`);
  for (const agentId of [waiter, ...holders]) await waitForState(bench.instance, agentId, 'killed');
  return {
    eventsPerTurn: (long - short) / turns,
    eventsPerQueuedMinute: ((after - before) * 60_000) / queuedForMs,
    queuedForMs,
  };
}
