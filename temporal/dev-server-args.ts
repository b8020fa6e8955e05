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

export function devServerSearchAttributeArgs(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${TYPE_NAMES[key.type] ?? key.type}`]);
}

if (require.main === module) {
  process.stdout.write(`${devServerSearchAttributeArgs().join('\n')}\n`);
}
