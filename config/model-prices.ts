import { z } from 'zod';

/**
 * What each model costs, in US dollars per million tokens, and how large its context window is.
 * The defaults are Anthropic's list prices when this was written; an operator sets their own with
 * MODEL_PRICES (JSON, merged over these), e.g.
 * {"claude-sonnet-5-5":{"input":3,"output":15,"cacheWrite":3.75,"cacheRead":0.3}}.
 * A model id matches its own entry or the longest entry it starts with ("claude-sonnet-4-5-20250929"
 * uses "claude-sonnet-4-5").
 */
export const ModelPriceSchema = z.strictObject({
  input: z.number().min(0),
  output: z.number().min(0),
  /** Writing the prompt cache (5-minute entries). */
  cacheWrite: z.number().min(0),
  cacheRead: z.number().min(0),
  /** Input tokens one request may hold (default 200,000). */
  contextWindow: z.number().int().min(1000).max(10_000_000).optional(),
});
export type ModelPrice = z.infer<typeof ModelPriceSchema>;

export const ModelPriceTableSchema = z.record(z.string().min(1).max(200), ModelPriceSchema);
export type ModelPriceTable = z.infer<typeof ModelPriceTableSchema>;

export const DEFAULT_CONTEXT_WINDOW = 200_000;

const sonnet: ModelPrice = { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3 };
export const DEFAULT_MODEL_PRICES: ModelPriceTable = {
  'claude-sonnet-5-5': sonnet,
  'claude-sonnet-4-5': sonnet,
  'claude-sonnet-4': sonnet,
  'claude-opus-4-5': { input: 5, output: 25, cacheWrite: 6.25, cacheRead: 0.5 },
  'claude-opus-4-1': { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 },
  'claude-opus-4': { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 },
  'claude-haiku-4-5': { input: 1, output: 5, cacheWrite: 1.25, cacheRead: 0.1 },
  'claude-3-5-haiku': { input: 0.8, output: 4, cacheWrite: 1, cacheRead: 0.08 },
};

/** Parses MODEL_PRICES (empty: the defaults alone); the message names what is wrong. */
export function parseModelPrices(raw: string): ModelPriceTable {
  if (raw.trim() === '') return DEFAULT_MODEL_PRICES;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error(
      'must be a JSON object of model → {input, output, cacheWrite, ' +
        'cacheRead[, contextWindow]} in USD per million tokens',
    );
  }
  const parsed = ModelPriceTableSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'value'} ${issue.message}`).join('; '),
    );
  return { ...DEFAULT_MODEL_PRICES, ...parsed.data };
}

/** The price of a model: its own entry, else the longest entry its id starts with; undefined when none. */
export function priceOf(table: ModelPriceTable, model: string): ModelPrice | undefined {
  if (table[model]) return table[model];
  const prefix = Object.keys(table)
    .filter((key) => model.startsWith(key))
    .sort((a, b) => b.length - a.length)[0];
  return prefix === undefined ? undefined : table[prefix];
}

/** The estimated cost in USD of the tokens of one or more requests. */
export function costOf(
  usage: {
    inputTokens: number;
    outputTokens: number;
    cacheCreationInputTokens?: number;
    cacheReadInputTokens?: number;
  },
  price: ModelPrice,
): number {
  const microDollars =
    usage.inputTokens * price.input +
    usage.outputTokens * price.output +
    (usage.cacheCreationInputTokens ?? 0) * price.cacheWrite +
    (usage.cacheReadInputTokens ?? 0) * price.cacheRead;
  return microDollars / 1_000_000;
}
