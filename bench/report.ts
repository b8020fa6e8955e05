import type { BenchmarkResults } from './run';
import { ratio } from './stats';

/** One line of the benchmark's table: a figure beside its baseline from the same run, and its target. */
export interface ReportRow {
  figure: string;
  ours: string;
  baseline: string;
  comparison: string;
  target: string;
  met: boolean | null;
}

const ms = (value: number): string => `${Math.round(value)} ms`;
const times = (value: number): string => `${value.toFixed(2)}×`;

/** The rows of issue 12's targets (and the figures without one), from one run's results. */
export function reportRows(results: BenchmarkResults): ReportRow[] {
  const { spawn, pooled, kill, federated, status, turn, verification, burst, history, idleStreams } = results;
  const turnP50 = ratio(turn.ours.p50, turn.baseline.p50);
  const spawnP50 = ratio(spawn.ours.p50, spawn.baseline.p50);
  const spawnP99 = ratio(spawn.ours.p99, spawn.baseline.p99);
  const overLocal = federated.spawn.p50 - federated.localSpawnP50;
  return [
    {
      figure: 'spawn → sandbox ready, p50',
      ours: ms(spawn.ours.p50),
      baseline: `bare create+start ${ms(spawn.baseline.p50)}`,
      comparison: times(spawnP50),
      target: '≤ 1.3×',
      met: spawnP50 <= 1.3,
    },
    {
      figure: 'spawn → sandbox ready, p95',
      ours: ms(spawn.ours.p95),
      baseline: `bare create+start ${ms(spawn.baseline.p95)}`,
      comparison: times(ratio(spawn.ours.p95, spawn.baseline.p95)),
      target: '',
      met: null,
    },
    {
      figure: 'spawn → sandbox ready, p99',
      ours: ms(spawn.ours.p99),
      baseline: `bare create+start ${ms(spawn.baseline.p99)}`,
      comparison: times(spawnP99),
      target: '≤ 2×',
      met: spawnP99 <= 2,
    },
    {
      figure: `spawn → ready, warm pool of ${pooled.poolSize}, p50`,
      ours: ms(pooled.ours.p50),
      baseline: `bare create+start ${ms(pooled.baseline.p50)}`,
      comparison: times(ratio(pooled.ours.p50, pooled.baseline.p50)),
      target: '≤ 150 ms',
      met: pooled.ours.p50 <= 150,
    },
    {
      figure: `spawn → ready, warm pool of ${pooled.poolSize}, p99`,
      ours: ms(pooled.ours.p99),
      baseline: `bare create+start ${ms(pooled.baseline.p99)}`,
      comparison: times(ratio(pooled.ours.p99, pooled.baseline.p99)),
      target: '',
      met: null,
    },
    {
      figure: 'kill → container gone, p50',
      ours: ms(kill.ours.p50),
      baseline: `bare forced remove ${ms(kill.baseline.p50)}`,
      comparison: times(ratio(kill.ours.p50, kill.baseline.p50)),
      target: '',
      met: null,
    },
    {
      figure: 'kill → container gone, p99',
      ours: ms(kill.ours.p99),
      baseline: `bare forced remove ${ms(kill.baseline.p99)}`,
      comparison: times(ratio(kill.ours.p99, kill.baseline.p99)),
      target: '≤ 500 ms',
      met: kill.ours.p99 <= 500,
    },
    {
      figure: 'federated spawn → ready, p50',
      ours: ms(federated.spawn.p50),
      baseline: `local spawn ${ms(federated.localSpawnP50)}`,
      comparison: `+${ms(overLocal)}`,
      target: '≤ local + 100 ms',
      met: overLocal <= 100,
    },
    {
      figure: 'federated kill → gone, p50',
      ours: ms(federated.kill.p50),
      baseline: `local kill ${ms(kill.ours.p50)}`,
      comparison: `+${ms(federated.kill.p50 - kill.ours.p50)}`,
      target: '',
      met: null,
    },
    {
      figure: 'status through the API, p50',
      ours: ms(status.ours.p50),
      baseline: `bare workflow query ${ms(status.baseline.p50)}`,
      comparison: times(ratio(status.ours.p50, status.baseline.p50)),
      target: '≤ 1.5×',
      met: ratio(status.ours.p50, status.baseline.p50) <= 1.5,
    },
    {
      figure: 'turn overhead (model call + tool call), p50',
      ours: ms(turn.ours.p50),
      baseline: `bare loop ${ms(turn.baseline.p50)}`,
      comparison: times(turnP50),
      target: '≤ 1.2×',
      met: turnP50 <= 1.2,
    },
    {
      figure: 'signed-command verifications',
      ours: `${verification.commandVerificationsPerSecond.toLocaleString('en')}/s`,
      baseline: `bare Ed25519 verify ${verification.bareVerifiesPerSecond.toLocaleString('en')}/s`,
      comparison: times(verification.ratio),
      target: '≥ 0.7×',
      met: verification.ratio >= 0.7,
    },
    {
      figure: `burst of ${burst.agents} spawns (capacity ${burst.capacity}): all running`,
      ours: `${(burst.allRunningMs / 1000).toFixed(1)} s`,
      baseline: `bare create+start of ${burst.agents} ${(burst.bareAllStartedMs / 1000).toFixed(1)} s`,
      comparison: times(ratio(burst.allRunningMs, burst.bareAllStartedMs)),
      target: '≤ 60 s',
      met: burst.allRunningMs <= 60_000,
    },
    {
      figure: `burst: spawn → running per agent, p50`,
      ours: ms(burst.spawnToRunning.p50),
      baseline: '',
      comparison: '',
      target: '',
      met: null,
    },
    {
      figure: 'burst: admission (spawn answered, the API asks on the way), p50',
      ours: ms(burst.answered.p50),
      baseline: '',
      comparison: `p95 ${ms(burst.answered.p95)}`,
      target: '≤ 2 s',
      met: burst.answered.p50 <= 2_000,
    },
    {
      figure: `worker memory per live agent (${burst.agents} live)`,
      ours: `${burst.workerMbPerAgent} MB`,
      baseline: `idle worker ${burst.idleWorkerRssMb} MB`,
      comparison: `${burst.liveWorkerRssMb} MB live`,
      target: '≤ 3 MB',
      met: burst.workerMbPerAgent <= 3,
    },
    {
      figure: `burst: kill all ${burst.agents} → all gone`,
      ours: `${(burst.allGoneMs / 1000).toFixed(1)} s`,
      baseline: '',
      comparison: '',
      target: '',
      met: null,
    },
    {
      figure:
        `PostgreSQL queries/s, ${idleStreams.streams} idle event streams + ` +
        `${idleStreams.sessions} idle live sessions`,
      ours: `${idleStreams.withStreamsPerSecond.toFixed(1)}/s`,
      baseline: `none open ${idleStreams.withoutPerSecond.toFixed(1)}/s`,
      comparison: `+${(idleStreams.withStreamsPerSecond - idleStreams.withoutPerSecond).toFixed(1)}/s`,
      target: 'constant, small',
      met: null,
    },
    {
      figure: 'history events per agent turn',
      ours: history.eventsPerTurn.toFixed(1),
      baseline: '',
      comparison: '',
      target: '',
      met: null,
    },
    {
      figure: 'history events per queued minute',
      ours: history.eventsPerQueuedMinute.toFixed(1),
      baseline: `measured over ${(history.queuedForMs / 1000).toFixed(0)} s`,
      comparison: '',
      target: '',
      met: null,
    },
  ];
}

const verdict = (met: boolean | null): string => (met === null ? '' : met ? 'met' : 'NOT met');

/** The table as fixed-width text for the terminal. */
export function textTable(rows: ReportRow[]): string {
  const header: ReportRow = {
    figure: 'figure',
    ours: 'ours',
    baseline: 'baseline (same run)',
    comparison: 'ratio',
    target: 'target',
    met: null,
  };
  const cells = [header, ...rows].map((row) => [
    row.figure,
    row.ours,
    row.baseline,
    row.comparison,
    row.target,
    row === header ? '' : verdict(row.met),
  ]);
  const widths = cells[0]?.map((_, column) => Math.max(...cells.map((line) => (line[column] ?? '').length))) ?? [];
  return cells
    .map((line) =>
      line
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The table as Markdown, for the README. */
export function markdownTable(rows: ReportRow[]): string {
  const lines = ['| figure | ours | baseline (same run) | ratio | target | |', '|---|---|---|---|---|---|'];
  for (const row of rows)
    lines.push(`| ${[row.figure, row.ours, row.baseline, row.comparison, row.target, verdict(row.met)].join(' | ')} |`);
  return lines.join('\n');
}
