import { measureVerification } from '../../bench/verification';

/** The benchmark's CI-sized smoke run: every figure is produced (timings are never asserted). */
describe('bench smoke run', () => {
  it('measures signed-command verification and its bare Ed25519 baseline in the same run', () => {
    const figures = measureVerification(0.05);
    expect(figures.bareVerifiesPerSecond).toBeGreaterThan(0);
    expect(figures.commandVerificationsPerSecond).toBeGreaterThan(0);
    expect(Number.isFinite(figures.ratio)).toBe(true);
    expect(figures.target).toBe(0.7);
  });
});
