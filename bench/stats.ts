/** Summaries of latency samples (milliseconds): nearest-rank percentiles, so every figure is a measured sample. */
export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

const round = (value: number): number => Math.round(value * 10) / 10;

export function distribution(samples: readonly number[]): Distribution {
  return {
    count: samples.length,
    min: round(Math.min(...samples)),
    p50: round(percentile(samples, 50)),
    p95: round(percentile(samples, 95)),
    p99: round(percentile(samples, 99)),
    max: round(Math.max(...samples)),
  };
}

/** ours / baseline, to three decimals. */
export const ratio = (ours: number, baseline: number): number => Math.round((ours / baseline) * 1000) / 1000;
