/**
 * JSON.parse keeps the last of duplicated keys silently, so `{"commandType":"agent.status",
 * "commandType":"agent.spawn"}` could mean different things to different parsers. Signed bodies are
 * parsed strictly: valid JSON (RFC 8259) with no duplicated key in any object.
 */
export class StrictJsonError extends Error {
  constructor(
    readonly code: 'malformed_json' | 'duplicate_key',
    message: string,
  ) {
    super(message);
  }
}

export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StrictJsonError(
      'malformed_json',
      `the body is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  findDuplicateKey(text);
  return value;
}

/** Walks the (already validated) JSON text and throws on the first object with a repeated key. */
function findDuplicateKey(text: string): void {
  const keys: Array<Set<string> | null> = []; // one entry per open container; null for arrays
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '{') {
      keys.push(new Set());
      expectKey = true;
    } else if (char === '[') {
      keys.push(null);
      expectKey = false;
    } else if (char === '}' || char === ']') {
      keys.pop();
      expectKey = false;
    } else if (char === ',') {
      expectKey = keys.at(-1) instanceof Set;
    } else if (char === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        const seen = keys.at(-1);
        if (seen?.has(key)) throw new StrictJsonError('duplicate_key', `the key "${key}" appears twice in one object`);
        seen?.add(key);
        expectKey = false;
      }
      i = end;
    }
  }
}
