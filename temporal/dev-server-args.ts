import { ALL_SEARCH_ATTRIBUTES } from '../shared/search-attributes';

/**
 * Prints the dev server's arguments for scripts/start.sh, one per line: `--search-attribute Name=Type`
 * for the project's custom search attributes, and `--dynamic-config-value key=value` for the settings
 * the product needs changed.
 */
const TYPE_NAMES: Record<string, string> = {
  KEYWORD: 'Keyword',
  TEXT: 'Text',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** Each custom search attribute's name and its type as the Temporal CLI spells it. */
export function searchAttributeNamesAndTypes(): Array<[string, string]> {
  return ALL_SEARCH_ATTRIBUTES.map((key) => [key.name, TYPE_NAMES[key.type] ?? key.type]);
}

export function devServerSearchAttributeArgs(): string[] {
  return searchAttributeNamesAndTypes().flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);
}

/**
 * Every spawn asks the instance's admission workflow for a slot with an update; Temporal accepts only
 * 10 updates in flight per workflow by default, and a burst of spawns beyond that was refused and
 * retried for minutes. (A Temporal cluster of your own needs the same setting.)
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Record<string, string> = { 'history.maxInFlightUpdates': '1000' };

export function devServerDynamicConfigArgs(): string[] {
  return Object.entries(DEV_SERVER_DYNAMIC_CONFIG).flatMap(([key, value]) => [
    '--dynamic-config-value',
    `${key}=${value}`,
  ]);
}

if (require.main === module) {
  process.stdout.write(`${[...devServerSearchAttributeArgs(), ...devServerDynamicConfigArgs()].join('\n')}\n`);
}
