import path from 'node:path';
import { faultKindsFrom } from './faults';
import { runSoak, SOAK_SCALES, soakTable, writeSoakOutputs } from './run';

/**
 * `npm run soak`: hub and spoke under hundreds of agents for SOAK_MINUTES (default 30) while faults
 * hit every component; prints the table (and writes data/soak/results.{json,md}), then fails on any
 * broken invariant. SOAK_SCALE=smoke runs the CI-sized version; SOAK_SEED repeats a run; SOAK_FAULTS picks
 * the kinds of fault; SOAK_TEMPORAL=postgres runs Temporal on PostgreSQL (built from its Go module).
 */
const scaleName = process.env.SOAK_SCALE === 'smoke' ? 'smoke' : 'full';
const base = SOAK_SCALES[scaleName];
const scale = {
  ...base,
  minutes: Number(process.env.SOAK_MINUTES ?? base.minutes),
  faultKinds: faultKindsFrom(process.env.SOAK_FAULTS),
  temporal: process.env.SOAK_TEMPORAL === 'postgres' ? ('postgres' as const) : ('dev' as const),
};
const seed = Number(process.env.SOAK_SEED ?? Date.now() % 1_000_000);
const outputDir = path.resolve(__dirname, '../data/soak');

it(`soak (${scaleName}, ${scale.minutes} min, Temporal on ${scale.temporal}, seed ${seed})`, async () => {
  const progress = (line: string): void =>
    void process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  progress(`logs of the API and worker processes: ${path.join(outputDir, 'logs')}`);
  const report = await runSoak(scale, { seed, logDir: path.join(outputDir, 'logs'), progress });
  await writeSoakOutputs(report, outputDir);
  process.stdout.write(`\n${soakTable(report)}\n\n`);
  const { findings } = report;
  expect(report.crashes).toEqual({});
  expect(report.faultLog.filter((fault) => fault.error !== undefined)).toEqual([]);
  expect({
    lost: findings.lost,
    stuck: findings.stuck,
    orphaned: findings.orphaned,
    duplicates: findings.duplicateSandboxes,
  }).toEqual({ lost: 0, stuck: 0, orphaned: 0, duplicates: 0 });
  expect({ containers: findings.leftoverContainers, mounts: findings.leftoverMounts }).toEqual({
    containers: 0,
    mounts: 0,
  });
  expect(findings.callbacks).toMatchObject({ outOfOrder: 0, gaps: 0, unfinished: 0, refusals: 0 });
  expect(findings.sse).toMatchObject({ gaps: 0, unfinished: 0 });
  expect([findings.rows.hub.pastRetention, findings.rows.spoke.pastRetention]).toEqual([0, 0]);
});
