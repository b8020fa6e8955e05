import { parseStrictJson, StrictJsonError } from '../../federation/strict-json';

describe('parseStrictJson', () => {
  it('parses valid JSON, including keys repeated in different objects and escaped quotes', () => {
    expect(parseStrictJson('{"a":{"x":1},"b":{"x":2},"c":["\\"a\\":1","{\\"a\\""],"d":[{"x":1},{"x":2}]}')).toEqual({
      a: { x: 1 },
      b: { x: 2 },
      c: ['"a":1', '{"a"'],
      d: [{ x: 1 }, { x: 2 }],
    });
  });

  it.each([
    ['{"commandType":"agent.status","commandType":"agent.spawn"}', 'commandType'],
    ['{"payload":{"agentId":"a","agentId":"b"}}', 'agentId'],
    ['{"list":[{"k":1,"k":2}]}', 'k'],
    ['{"a":1,"\\u0061":2}', 'a'],
  ])('refuses duplicated keys in %s', (text, key) => {
    expect(() => parseStrictJson(text)).toThrow(
      new StrictJsonError('duplicate_key', `the key "${key}" appears twice in one object`),
    );
  });

  it.each(['{"a":', '{a:1}', "{'a':1}", '{"a":1,}', ''])('refuses malformed JSON %p', (text) => {
    expect(() => parseStrictJson(text)).toThrow(StrictJsonError);
  });
});
