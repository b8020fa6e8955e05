import type { StoredMessage } from './request';

/** What the cache holds at most, in characters of message JSON, over every agent of this process. */
export const TRANSCRIPT_CACHE_CHARACTERS = 64 * 1024 * 1024;

interface Entry {
  messages: StoredMessage[];
  characters: number;
}

/**
 * The transcripts of the agents whose model calls this worker made lately, so a turn reads only the messages added
 * since its last one instead of the whole conversation (whose bytes would grow with the square of the turns).
 * Messages are append-only and a sequence number never changes its content, so a cached prefix is always right; a
 * turn on another worker only means this one reads a longer suffix. Least recently used agents go first when the
 * cache is over its size.
 */
export class TranscriptCache {
  private readonly entries = new Map<string, Entry>();
  private characters = 0;

  constructor(private readonly maxCharacters = TRANSCRIPT_CACHE_CHARACTERS) {}

  /** The agent's cached messages with a sequence number up to `throughSeq`, in order (possibly none). */
  prefix(agentId: string, throughSeq: number): StoredMessage[] {
    const entry = this.entries.get(agentId);
    if (!entry) return [];
    this.entries.delete(agentId); // most recently used last
    this.entries.set(agentId, entry);
    const end = entry.messages.findIndex((message) => message.seq > throughSeq);
    return end === -1 ? entry.messages : entry.messages.slice(0, end);
  }

  /**
   * Keeps `messages` (a whole transcript from seq 0, in order) as the agent's. Only what is new since the cached
   * prefix is measured, so keeping a transcript every turn costs what the turn added.
   */
  keep(agentId: string, messages: StoredMessage[]): void {
    const known = this.entries.get(agentId);
    const from = known && known.messages.length <= messages.length ? known.messages.length : 0;
    this.forget(agentId);
    const added = messages.slice(from).reduce((sum, message) => sum + JSON.stringify(message.content).length, 0);
    const characters = (from > 0 && known ? known.characters : 0) + added;
    if (characters > this.maxCharacters) return;
    this.entries.set(agentId, { messages, characters });
    this.characters += characters;
    for (const [oldest, entry] of this.entries) {
      if (this.characters <= this.maxCharacters) break;
      this.entries.delete(oldest);
      this.characters -= entry.characters;
    }
  }

  forget(agentId: string): void {
    const entry = this.entries.get(agentId);
    if (!entry) return;
    this.entries.delete(agentId);
    this.characters -= entry.characters;
  }

  /** How many characters are held (for tests and the benchmark). */
  get size(): number {
    return this.characters;
  }
}
