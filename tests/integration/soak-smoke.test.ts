import path from 'node:path';
import { FAULT_KINDS } from '../../soak/faults';
import { runSoak, SOAK_SCALES, soakTable, writeSoakOutputs } from '../../soak/run';

/**
 * The soak's CI-sized run (`npm run soak` is the full one): hub and spoke with sessions, SSE watchers
 * and federated agents for a few minutes while every kind of fault hits once (workers restarted and
 * killed, the API, PostgreSQL, Temporal and Docker restarted, the link cut). Nothing may be lost,
 * stuck, orphaned, duplicated or left behind, and every callback and stream arrives whole and in order.
 */
describe('soak, CI-sized: hub and spoke under load through every kind of fault', () => {
  const outputDir = path.resolve(__dirname, '../../data/soak-smoke');

  it(
    'keeps every invariant',
    async () => {
      const seed = Number(process.env.SOAK_SEED ?? Date.now() % 1_000_000);
      const report = await runSoak(SOAK_SCALES.smoke, {
        seed,
        logDir: path.join(outputDir, 'logs'),
        progress: () => undefined,
      });
      await writeSoakOutputs(report, outputDir);
      const { findings } = report;
      const context = `seed ${seed}; logs in ${path.join(outputDir, 'logs')}\n${soakTable(report)}`;
      // Every kind of fault, at least once.
      expect([context, [...new Set(report.faultLog.map((fault) => fault.kind))].sort()]).toEqual([
        context,
        [...FAULT_KINDS].sort(),
      ]);
      expect([context, report.faultLog.filter((fault) => fault.error !== undefined)]).toEqual([context, []]);
      expect([context, report.crashes]).toEqual([context, {}]);
      expect([
        context,
        {
          lost: findings.lost,
          stuck: findings.stuck,
          orphaned: findings.orphaned,
          duplicates: findings.duplicateSandboxes,
        },
      ]).toEqual([context, { lost: 0, stuck: 0, orphaned: 0, duplicates: 0 }]);
      expect([context, findings.leftoverContainers, findings.leftoverMounts]).toEqual([context, 0, 0]);
      expect([context, findings.callbacks]).toEqual([
        context,
        expect.objectContaining({ outOfOrder: 0, gaps: 0, unfinished: 0, refusals: 0 }),
      ]);
      expect([context, findings.sse]).toEqual([context, expect.objectContaining({ gaps: 0, unfinished: 0 })]);
      expect(findings.callbacks.sessions + findings.sse.streams).toBeGreaterThan(10);
      expect([context, findings.rows.hub.pastRetention, findings.rows.spoke.pastRetention]).toEqual([context, 0, 0]);
    },
    20 * 60_000,
  );
});
