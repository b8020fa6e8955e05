import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { latencyChart } from './chart';
import { markdownTable, reportRows, textTable } from './report';
import type { BenchmarkResults } from './run';

export interface BenchOutputs {
  json: string;
  markdown: string;
  chart: string;
  /** What the terminal shows: the table, where the spawn time goes, and the files written. */
  text: string;
}

const PANELS: Array<{ title: string; series: string[] }> = [
  {
    title: 'spawn → sandbox ready',
    series: ['bare create+start', 'spawn → ready', 'spawn → ready, warm pool', 'federated spawn → ready'],
  },
  { title: 'kill → container gone', series: ['bare forced remove', 'kill → gone', 'federated kill → gone'] },
  { title: 'status query', series: ['bare workflow query', 'status through the API'] },
  { title: 'a turn: model call + tool call', series: ['bare turn', 'turn through the system'] },
  { title: 'burst: spawn → running', series: ['burst spawn → running'] },
];

/** Writes results.json, results.md and latency.svg into `dir`. */
export async function writeBenchOutputs(results: BenchmarkResults, dir: string): Promise<BenchOutputs> {
  await mkdir(dir, { recursive: true });
  const rows = reportRows(results);
  const files = {
    json: path.join(dir, 'results.json'),
    markdown: path.join(dir, 'results.md'),
    chart: path.join(dir, 'latency.svg'),
  };
  const panels = PANELS.map((panel) => ({
    title: panel.title,
    series: panel.series
      .map((label) => ({ label, samplesMs: results.samples[label] ?? [] }))
      .filter((series) => series.samplesMs.length > 0),
  }));
  await writeFile(files.json, `${JSON.stringify({ ...results, rows }, null, 2)}\n`);
  await writeFile(files.markdown, `${markdownTable(rows)}\n`);
  await writeFile(files.chart, latencyChart(panels));
  const profileLines = (profile: Record<string, number>): string[] =>
    Object.entries(profile).map(
      ([phase, median]) => `  ${String(Number.isFinite(median) ? Math.round(median) : '—').padStart(6)} ms  ${phase}`,
    );
  const text = [
    `benchmark (${results.scale.name}) on ${results.machine.cpus} cores, ` +
      `${results.machine.memoryMb} MB, sandboxes under ` +
      results.machine.sandboxRuntime,
    '',
    textTable(rows),
    '',
    "where a spawn's time goes (median per phase):",
    ...profileLines(results.spawn.profileMedianMs),
    `and with the warm pool (a claimed sandbox has no create or start of its own):`,
    ...profileLines(results.pooled.profileMedianMs),
    "and through a hub (the spoke's phases from its agent row on):",
    ...profileLines(results.federated.profileMedianMs),
    `and in the burst of ${results.burst.agents}:`,
    ...profileLines(results.burst.profileMedianMs),
    '',
    'what a status request does (medians, each timed on its own):',
    ...profileLines(results.status.profileMedianMs),
    "where a turn's time goes (median per phase), and the bare loop's two steps:",
    ...profileLines(results.turn.profileMedianMs),
    '',
    `written: ${files.json}, ${files.markdown}, ${files.chart}`,
    '',
  ].join('\n');
  return { ...files, text };
}
