/**
 * A small SVG of latency distributions: one panel per figure, each series drawn as its empirical
 * cumulative distribution (x: milliseconds, y: share of samples at or below), ours beside its
 * baseline measured in the same run.
 */
export interface ChartSeries {
  label: string;
  samplesMs: readonly number[];
}

export interface ChartPanel {
  title: string;
  series: readonly ChartSeries[];
}

const PANEL_WIDTH = 420;
const PANEL_HEIGHT = 220;
const MARGIN = { left: 48, right: 16, top: 28, bottom: 34 };
const COLORS = ['#6b7280', '#2563eb', '#16a34a', '#dc2626'];

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round axis ticks: 1, 2 or 5 times a power of ten. */
function ticks(max: number, count = 4): number[] {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw) ?? raw;
  return Array.from({ length: Math.floor(max / step) + 1 }, (_, index) => index * step);
}

function panel(chart: ChartPanel, originX: number, originY: number): string {
  const width = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const height = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxMs = Math.max(1, ...chart.series.flatMap((series) => series.samplesMs)) * 1.05;
  const x = (ms: number): number => originX + MARGIN.left + (ms / maxMs) * width;
  const y = (share: number): number => originY + MARGIN.top + (1 - share) * height;
  const parts = [
    `<text x="${originX + MARGIN.left}" y="${originY + 18}" font-weight="bold">${escapeXml(chart.title)}</text>`,
  ];
  parts.push(`<rect x="${x(0)}" y="${y(1)}" width="${width}" height="${height}" fill="none" stroke="#d1d5db"/>`);
  for (const tick of ticks(maxMs)) {
    parts.push(`<line x1="${x(tick)}" y1="${y(0)}" x2="${x(tick)}" y2="${y(0) + 4}" stroke="#9ca3af"/>`);
    parts.push(`<text x="${x(tick)}" y="${y(0) + 16}" text-anchor="middle" fill="#4b5563">${tick}</text>`);
  }
  parts.push(`<text x="${x(maxMs / 2)}" y="${y(0) + 30}" text-anchor="middle" fill="#4b5563">ms</text>`);
  for (const share of [0, 0.5, 1])
    parts.push(`<text x="${x(0) - 6}" y="${y(share) + 4}" text-anchor="end" fill="#4b5563">${share * 100}%</text>`);
  chart.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length] ?? '#000';
    const sorted = [...series.samplesMs].sort((a, b) => a - b);
    const steps = sorted.map(
      (ms, rank) =>
        `${x(ms).toFixed(1)},${y(rank / sorted.length).toFixed(1)} ` +
        `${x(ms).toFixed(1)},${y((rank + 1) / sorted.length).toFixed(1)}`,
    );
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${x(0)},${y(0)} ${steps.join(' ')}"/>`,
    );
    const legendY = originY + MARGIN.top + 14 + index * 16;
    parts.push(
      `<line x1="${x(0) + width - 150}" y1="${legendY - 4}" ` +
        `x2="${x(0) + width - 134}" y2="${legendY - 4}" stroke="${color}" ` +
        `stroke-width="2"/>`,
    );
    parts.push(
      `<text x="${x(0) + width - 130}" y="${legendY}" ` +
        `fill="#111827">${escapeXml(series.label)} (n=${sorted.length})</text>`,
    );
  });
  return parts.join('\n');
}

export function latencyChart(panels: readonly ChartPanel[], columns = 2): string {
  const rows = Math.ceil(panels.length / columns);
  const width = PANEL_WIDTH * Math.min(columns, panels.length);
  const height = PANEL_HEIGHT * rows;
  const body = panels
    .map((chart, index) => panel(chart, (index % columns) * PANEL_WIDTH, Math.floor(index / columns) * PANEL_HEIGHT))
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" ` +
      `height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    body,
    '</svg>',
    '',
  ].join('\n');
}
