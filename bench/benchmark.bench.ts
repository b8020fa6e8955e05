import path from 'node:path';
import { writeBenchOutputs } from './output';
import { runBenchmark, SCALES, type BenchScale } from './run';

/**
 * `npm run bench`: the full benchmark on this machine (BENCH_SCALE=smoke for the small one). It runs
 * under jest only to share the test suite's environment (an ephemeral Temporal dev server, a migrated
 * database template, the workflow bundle); it asserts nothing about timings.
 */
const scaleName = process.env.BENCH_SCALE ?? 'full';
const isScale = (name: string): name is BenchScale['name'] => Object.hasOwn(SCALES, name);

it(`benchmark (${scaleName})`, async () => {
  if (!isScale(scaleName)) throw new Error(`BENCH_SCALE must be one of ${Object.keys(SCALES).join(', ')}`);
  const scale = SCALES[scaleName];
  const results = await runBenchmark(scale, (line) => process.stdout.write(`==> ${line}\n`));
  const outputs = await writeBenchOutputs(results, path.resolve(__dirname, '../data/bench'));
  process.stdout.write(`\n${outputs.text}`);
});
