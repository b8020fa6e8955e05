import { costOf, DEFAULT_MODEL_PRICES, parseModelPrices, priceOf } from '../../config/model-prices';
import { loadConfig } from '../../config/env';

describe('model price table', () => {
  it('prices a model by its own entry or the longest entry its id starts with', () => {
    const table = parseModelPrices(
      '{"claude-sonnet-4-5-20250929":{"input":2,"output":10,"cacheWrite":2.5,"cacheRead":0.2,"contextWindow":1000000}}',
    );
    expect(priceOf(table, 'claude-sonnet-4-5-20250929')).toMatchObject({ input: 2, contextWindow: 1_000_000 });
    expect(priceOf(table, 'claude-sonnet-4-5-20991231')).toEqual(DEFAULT_MODEL_PRICES['claude-sonnet-4-5']);
    expect(priceOf(table, 'claude-opus-4-1-20250805')).toEqual(DEFAULT_MODEL_PRICES['claude-opus-4-1']);
    expect(priceOf(table, 'gpt-4')).toBeUndefined();
  });

  it('adds input, output, cache writes and cache reads at their own prices', () => {
    const price = { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3 };
    expect(costOf({ inputTokens: 1_000_000, outputTokens: 0 }, price)).toBeCloseTo(3, 9);
    expect(
      costOf(
        { inputTokens: 100, outputTokens: 200, cacheCreationInputTokens: 1000, cacheReadInputTokens: 10_000 },
        price,
      ),
    ).toBeCloseTo((300 + 3000 + 3750 + 3000) / 1e6, 12);
  });

  it('refuses a malformed MODEL_PRICES at startup with a message that names it', () => {
    expect(() => loadConfig({ MODEL_PRICES: 'not json' })).toThrow(/MODEL_PRICES must be a JSON object/);
    expect(() => loadConfig({ MODEL_PRICES: '{"m":{"input":-1,"output":1,"cacheWrite":1,"cacheRead":1}}' })).toThrow(
      /MODEL_PRICES m\.input/,
    );
    expect(() => loadConfig({ MODEL_PRICES: '{"m":{"input":1,"output":1}}' })).toThrow(/MODEL_PRICES m\.cacheWrite/);
    expect(
      loadConfig({ MODEL_PRICES: '{"m":{"input":1,"output":2,"cacheWrite":1.25,"cacheRead":0.1}}' }).MODEL_PRICES,
    ).toContain('"m"');
  });
});
