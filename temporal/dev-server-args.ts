import { ALL_SEARCH_ATTRIBUTES } from '../shared/search-attributes';

/**
 * Prints the `--search-attribute Name=Type` arguments that register the project's custom search
 * attributes on the Temporal dev server, one argument per line, for scripts/start.sh.
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

if (require.main === module) {
  process.stdout.write(`${devServerSearchAttributeArgs().join('\n')}\n`);
}
