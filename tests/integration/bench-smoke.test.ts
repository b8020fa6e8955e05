import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FEDERATED_PHASES } from '../../bench/federated-agents';
import { writeBenchOutputs } from '../../bench/output';
import { runBenchmark, SCALES, STATUS_PHASES } from '../../bench/run';
import { SPAWN_PHASES } from '../../bench/spawn-profile';
import { BARE_TURN_PHASES, TURN_PHASES } from '../../bench/turns';

/**
 * The benchmark's CI-sized run (issue 12, item 5): every figure is produced with its baseline from the
 * same run, and the table, JSON and chart are written. Timings are never asserted.
 */
describe('benchmark smoke run', () => {
  it('produces every figure, its baseline, the table and the chart', async () => {
    const results = await runBenchmark(SCALES.smoke);
    const scale = SCALES.smoke;
    const positive = (value: number): void => expect(value).toBeGreaterThan(0);
    expect(results.spawn.ours.count).toBe(scale.spawnRounds);
    expect(results.spawn.baseline.count).toBe(scale.spawnRounds);
    [results.spawn.ours.p50, results.spawn.baseline.p50, results.kill.ours.p99, results.kill.baseline.p50].forEach(
      positive,
    );
    for (const phase of SPAWN_PHASES) expect(Number.isFinite(results.spawn.profileMedianMs[phase])).toBe(true);
    // With the pool, the sandbox existed before the spawn: the engine reported no create or start for it.
    expect(results.pooled.ours.count).toBe(scale.spawnRounds);
    positive(results.pooled.ours.p50);
    expect(results.pooled.profileMedianMs['launch: container created (beside the workspace)']).toBeNaN();
    expect(results.federated.spawn.count).toBe(scale.federatedRounds);
    [results.federated.spawn.p50, results.federated.kill.p50, results.federated.localSpawnP50].forEach(positive);
    for (const phase of [...FEDERATED_PHASES, ...SPAWN_PHASES])
      expect(Number.isFinite(results.federated.profileMedianMs[phase])).toBe(true);
    expect(results.status.ours.count).toBe(scale.statusQueries);
    [results.status.ours.p50, results.status.baseline.p50].forEach(positive);
    for (const phase of STATUS_PHASES) expect(Number.isFinite(results.status.profileMedianMs[phase])).toBe(true);
    // One interval per turn of the timed agent; the bare loop's first turn only warms its connection.
    expect(results.turn.ours.count).toBe(scale.overheadTurns);
    expect(results.turn.baseline.count).toBe(scale.overheadTurns - 1);
    [results.turn.ours.p50, results.turn.baseline.p50].forEach(positive);
    // Every phase of a turn is found (a missing step would be NaN), and the bare loop's two steps too.
    for (const phase of [...TURN_PHASES, ...BARE_TURN_PHASES])
      expect(Number.isFinite(results.turn.profileMedianMs[phase])).toBe(true);
    [results.verification.bareVerifiesPerSecond, results.verification.commandVerificationsPerSecond].forEach(positive);
    expect(results.burst.agents).toBe(scale.burstAgents);
    expect(results.burst.spawnToRunning.count).toBe(scale.burstAgents);
    [
      results.burst.allRunningMs,
      results.burst.bareAllStartedMs,
      results.burst.allGoneMs,
      results.burst.idleWorkerRssMb,
      results.burst.liveWorkerRssMb,
    ].forEach(positive);
    for (const phase of SPAWN_PHASES) expect(Number.isFinite(results.burst.profileMedianMs[phase])).toBe(true);
    expect(results.burst.answered.count).toBe(scale.burstAgents);
    positive(results.burst.answered.p50);
    expect(results.idleStreams).toMatchObject({ streams: scale.idleStreams, sessions: scale.idleStreams });
    [results.idleStreams.withoutPerSecond, results.idleStreams.withStreamsPerSecond].forEach(positive);
    expect(Number.isFinite(results.burst.workerMbPerAgent)).toBe(true);
    // A run's turns add history; a queued agent waits on a condition, adding none.
    positive(results.history.eventsPerTurn);
    expect(results.history.eventsPerQueuedMinute).toBe(0);

    const outputs = await writeBenchOutputs(results, await mkdtemp(path.join(os.tmpdir(), 'bench-')));
    expect(outputs.text).toContain('spawn → sandbox ready, p50');
    expect(outputs.text).toContain('bare create+start');
    expect(outputs.text).toContain('turn overhead (model call + tool call), p50');
    expect(outputs.text).toContain(TURN_PHASES[0]);
    const svg = await readFile(outputs.chart, 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect((svg.match(/<polyline /g) ?? []).length).toBe(12);
    expect(JSON.parse(await readFile(outputs.json, 'utf8'))).toMatchObject({ scale: { name: 'smoke' } });
  }, 600_000);
});
