import { TranscriptCache } from '../../model-client/transcript-cache';
import type { StoredMessage } from '../../model-client/request';

const message = (seq: number, text = `message ${seq}`): StoredMessage => ({
  seq,
  role: seq % 2 === 0 ? 'user' : 'assistant',
  content: text,
});
const upTo = (last: number): StoredMessage[] => Array.from({ length: last + 1 }, (_, seq) => message(seq));

/** The worker's cache of transcripts: a prefix per agent, bounded in size, least recently used first out. */
describe('transcript cache', () => {
  it('gives the cached prefix up to a sequence number, and nothing for an agent it does not hold', () => {
    const cache = new TranscriptCache();
    cache.keep('a', upTo(3));
    expect(cache.prefix('a', 3)).toEqual(upTo(3));
    expect(cache.prefix('a', 1)).toEqual(upTo(1));
    expect(cache.prefix('a', 9)).toEqual(upTo(3));
    expect(cache.prefix('b', 3)).toEqual([]);
  });

  it('counts only what a longer transcript adds, and replaces a shorter one', () => {
    const cache = new TranscriptCache();
    cache.keep('a', upTo(1));
    const before = cache.size;
    cache.keep('a', upTo(3));
    expect(cache.size).toBe(before + JSON.stringify('message 2').length + JSON.stringify('message 3').length);
    cache.keep('a', upTo(0));
    expect(cache.size).toBe(JSON.stringify('message 0').length);
    cache.forget('a');
    expect(cache.size).toBe(0);
    expect(cache.prefix('a', 3)).toEqual([]);
  });

  it('drops the least recently used agents when over its size, and never holds one larger than all of it', () => {
    const one = JSON.stringify('x'.repeat(100)).length;
    const cache = new TranscriptCache(3 * one);
    for (const agentId of ['a', 'b', 'c']) cache.keep(agentId, [message(0, 'x'.repeat(100))]);
    cache.prefix('a', 0); // a is used again: b is now the oldest
    cache.keep('d', [message(0, 'x'.repeat(100))]);
    expect(cache.prefix('b', 0)).toEqual([]);
    expect(cache.prefix('a', 0)).toHaveLength(1);
    expect(cache.prefix('d', 0)).toHaveLength(1);
    expect(cache.size).toBe(3 * one);
    cache.keep('huge', [message(0, 'x'.repeat(1000))]);
    expect(cache.prefix('huge', 0)).toEqual([]);
    expect(cache.size).toBe(3 * one);
  });
});
