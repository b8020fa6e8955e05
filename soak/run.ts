import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { collectFindings, settle, watchDuplicateSandboxes, watchWorkerMemory, type SoakFindings } from './checks';
import { FAULT_KINDS, injectFaults, type FaultKind, type InjectedFault } from './faults';
import { runLoad } from './load';
import { seededRandom } from './random';
import { startTopology } from './topology';

export interface SoakScale {
  /** How long agents are spawned and faults injected. */
  minutes: number;
  /** One spawn every this many ms. */
  paceMs: number;
  /** Mean time between two faults. */
  faultGapMs: number;
  linkCutMs: number;
  capacity: number;
  toolSeconds: number;
  retentionHours: number;
  /** How long the end waits for every agent to end before calling the rest stuck. */
  settleMinutes: number;
  /** The kinds of fault injected (SOAK_FAULTS). */
  faultKinds: readonly FaultKind[];
  /** Where Temporal keeps its state: the dev server's file, or PostgreSQL (SOAK_TEMPORAL=postgres). */
  temporal: 'dev' | 'postgres';
}

/** `full`: what `npm run soak` runs (SOAK_MINUTES changes its length); `smoke`: the CI-sized run in `npm test`. */
export const SOAK_SCALES: Record<'full' | 'smoke', SoakScale> = {
  full: {
    minutes: 30,
    paceMs: 4_000,
    faultGapMs: 120_000,
    linkCutMs: 60_000,
    capacity: 8,
    toolSeconds: 20,
    retentionHours: 0.25,
    settleMinutes: 10,
    faultKinds: FAULT_KINDS,
    temporal: 'dev',
  },
  smoke: {
    minutes: 3,
    paceMs: 3_000,
    faultGapMs: 12_000,
    linkCutMs: 20_000,
    capacity: 4,
    toolSeconds: 8,
    retentionHours: 0.05,
    settleMinutes: 6,
    faultKinds: FAULT_KINDS,
    temporal: 'dev',
  },
};

export interface SoakReport {
  seed: number;
  scale: SoakScale;
  spawned: Record<string, number>;
  refused: Record<string, number>;
  faults: Record<string, number>;
  faultLog: InjectedFault[];
  /** API and worker processes that exited on their own (each started again). */
  crashes: Record<string, number>;
  findings: SoakFindings;
  duplicateSamples: number;
  worstWorkerRssMb: number;
  minutesTotal: number;
}

const countBy = <T>(items: T[], key: (item: T) => string): Record<string, number> =>
  items.reduce<Record<string, number>>(
    (counts, item) => ({ ...counts, [key(item)]: (counts[key(item)] ?? 0) + 1 }),
    {},
  );

/** Hub and spoke under load through random faults; returns what the end-of-run checks found. */
export async function runSoak(
  scale: SoakScale,
  options: { seed: number; logDir: string; progress: (line: string) => void },
): Promise<SoakReport> {
  const random = seededRandom(options.seed);
  const topology = await startTopology({
    logDir: options.logDir,
    capacity: scale.capacity,
    toolSeconds: scale.toolSeconds,
    retentionHours: scale.retentionHours,
    temporal: scale.temporal,
  });
  const startedAt = Date.now();
  const until = startedAt + scale.minutes * 60_000;
  const stop = new AbortController();
  const duplicates = watchDuplicateSandboxes(topology.hub.instance.docker);
  const memory = watchWorkerMemory(topology);
  try {
    const faults = injectFaults(
      topology,
      random,
      { startedAt, until, meanGapMs: scale.faultGapMs, linkCutMs: scale.linkCutMs, kinds: scale.faultKinds },
      stop.signal,
    ).then((injected) => {
      options.progress(
        `faults done: ${injected.map((fault) => `${fault.kind} (${fault.side}) at ${fault.atSeconds} s`).join('; ')}`,
      );
      return injected;
    });
    // Watchers stop waiting once the settle time is over too.
    const giveUp = setTimeout(() => stop.abort(), (scale.minutes + scale.settleMinutes) * 60_000);
    const load = await runLoad(topology, random, { paceMs: scale.paceMs, until }, stop.signal);
    const injected = await faults;
    options.progress(`load done: ${load.accepted.length} accepted; waiting for every agent to end`);
    await settle(topology, Math.max(0, startedAt + (scale.minutes + scale.settleMinutes) * 60_000 - Date.now()));
    clearTimeout(giveUp);
    await duplicates.stop();
    await memory.stop();
    const findings = await collectFindings(topology, load, duplicates.agents, scale.retentionHours);
    return {
      seed: options.seed,
      scale,
      spawned: countBy(load.accepted, (spawned) => spawned.kind),
      refused: Object.fromEntries(load.refused),
      faults: Object.fromEntries(
        scale.faultKinds.map((kind) => [kind, injected.filter((fault) => fault.kind === kind).length]),
      ),
      faultLog: injected,
      crashes: topology.crashes(),
      findings,
      duplicateSamples: duplicates.samples(),
      worstWorkerRssMb: memory.worstMb(),
      minutesTotal: Math.round((Date.now() - startedAt) / 6_000) / 10,
    };
  } finally {
    stop.abort();
    await duplicates.stop();
    await memory.stop();
    await topology.stop();
  }
}

const states = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([state, count]) => `${state} ${count}`)
    .join(', ') || 'none';

/** The report as the README's table. */
export function soakTable(report: SoakReport): string {
  const { findings: f } = report;
  const rows: Array<[string, string]> = [
    ['length', `${report.scale.minutes} min of load, ${report.minutesTotal} min in all (seed ${report.seed})`],
    ['agents spawned', states(report.spawned)],
    ['spawn requests refused (client told)', states(report.refused)],
    ['hub agents by final state', states(f.hubStates)],
    ['spoke agents by final state', states(f.spokeStates)],
    ['lost / stuck / orphaned', `${f.lost} / ${f.stuck} / ${f.orphaned}`],
    ['duplicate sandboxes (every 200 ms)', `${f.duplicateSandboxes} in ${report.duplicateSamples} samples`],
    ['leftover containers / mounted workspaces', `${f.leftoverContainers} / ${f.leftoverMounts}`],
    [
      'callbacks: sessions, out of order, gaps, unfinished',
      `${f.callbacks.sessions}, ${f.callbacks.outOfOrder}, ${f.callbacks.gaps}, ${f.callbacks.unfinished}`,
    ],
    [
      'SSE streams: gaps, unfinished (reconnects)',
      `${f.sse.streams}: ${f.sse.gaps}, ${f.sse.unfinished} (${f.sse.reconnects})`,
    ],
    ['unknown tool outcomes', String(f.unknownToolOutcomes)],
    ['worst worker RSS', `${report.worstWorkerRssMb} MB`],
    ['hub rows: events, messages, tool calls, fed. commands, past retention', rowLine(f.rows.hub)],
    ['spoke rows: events, messages, tool calls, fed. commands, past retention', rowLine(f.rows.spoke)],
    ['faults injected', states(report.faults)],
    ['faults that did not recover', String(report.faultLog.filter((fault) => fault.error !== undefined).length)],
    ['processes that crashed (restarted by the soak)', states(report.crashes)],
  ];
  return ['| check | result |', '| --- | --- |', ...rows.map(([check, result]) => `| ${check} | ${result} |`)].join(
    '\n',
  );
}

const rowLine = (rows: SoakFindings['rows']['hub']): string =>
  `${rows.events}, ${rows.transcriptMessages}, ${rows.toolCalls}, ${rows.federationCommands}, ${rows.pastRetention}`;

/** data/soak/results.json and results.md. */
export async function writeSoakOutputs(report: SoakReport, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(dir, 'results.md'), `${soakTable(report)}\n`);
}
