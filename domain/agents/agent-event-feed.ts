import type { PgListener } from '../../platform/pg-listener';
import type { PrismaClient } from '../../prisma/client';

/** Channels the database notifies on (see the migration event_notifications and the model's progress). */
export const AGENT_EVENTS_CHANNEL = 'agent_events';
export const SESSION_EVENTS_CHANNEL = 'session_events';
export const AGENT_PROGRESS_CHANNEL = 'agent_progress';

/**
 * Why a wait ended: something for this agent may be new, only its live progress changed, nothing
 * happened in time (or the reader gave up), or the process is shutting down.
 */
export type Wake = 'events' | 'progress' | 'timeout' | 'closed';

interface Waiter {
  agentId: string;
  afterSeq: number;
  wake(reason: Wake): void;
}

/** "<agentId>:<seq>" as the trigger sends it. */
export function parseEventNotification(payload: string): { agentId: string; seq: number } | null {
  const at = payload.lastIndexOf(':');
  const seq = Number(payload.slice(at + 1));
  if (at <= 0 || !Number.isInteger(seq)) return null;
  return { agentId: payload.slice(0, at), seq };
}

/**
 * Wakes the readers of agents' event logs (the API's SSE streams) when an event is appended, instead of
 * each polling PostgreSQL. One listener serves every stream of the process. Notifications missed while
 * the listener reconnects are made up for at once (every reader looks again), and a sweep every
 * `sweepIntervalMs` asks PostgreSQL once for all waiting agents' latest sequence numbers: whatever
 * the number of streams, the idle cost is one query per sweep.
 */
export class AgentEventFeed {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    listener: PgListener,
    private readonly prisma: PrismaClient,
    sweepIntervalMs = 30_000,
  ) {
    listener.on(AGENT_EVENTS_CHANNEL, (payload) => {
      const event = parseEventNotification(payload);
      if (event) this.wakeAgent(event.agentId, (waiter) => event.seq > waiter.afterSeq, 'events');
    });
    listener.on(AGENT_PROGRESS_CHANNEL, (agentId) => this.wakeAgent(agentId, () => true, 'progress'));
    listener.onReconnect(() => {
      for (const agentId of [...this.waiters.keys()]) this.wakeAgent(agentId, () => true, 'events');
    });
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), sweepIntervalMs);
    this.sweeper.unref();
  }

  /** How many readers wait now (for the metrics). */
  get waiting(): number {
    let count = 0;
    for (const set of this.waiters.values()) count += set.size;
    return count;
  }

  /**
   * Resolves when the agent may have events after `afterSeq` ('events'), its live progress changed
   * ('progress'), `timeoutMs` passed ('timeout'), or `signal` aborted ('timeout').
   */
  wait(agentId: string, afterSeq: number, timeoutMs: number, signal?: AbortSignal): Promise<Wake> {
    return new Promise<Wake>((resolve) => {
      const set = this.waiters.get(agentId) ?? new Set<Waiter>();
      this.waiters.set(agentId, set);
      const done = (reason: Wake): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', aborted);
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(agentId) === set) this.waiters.delete(agentId);
        resolve(reason);
      };
      const aborted = (): void => done('timeout');
      const waiter: Waiter = { agentId, afterSeq, wake: done };
      const timer = setTimeout(() => done('timeout'), timeoutMs);
      signal?.addEventListener('abort', aborted, { once: true });
      set.add(waiter);
      if (this.closed) done('closed');
      else if (signal?.aborted) done('timeout');
    });
  }

  /** Ends every wait ('closed'), now and from now on. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const agentId of [...this.waiters.keys()]) this.wakeAgent(agentId, () => true, 'closed');
  }

  private wakeAgent(agentId: string, applies: (waiter: Waiter) => boolean, reason: Wake): void {
    for (const waiter of [...(this.waiters.get(agentId) ?? [])]) if (applies(waiter)) waiter.wake(reason);
  }

  /** The slow fallback: one query for every waiting agent's newest event. */
  private async sweep(): Promise<void> {
    const agentIds = [...this.waiters.keys()];
    if (agentIds.length === 0) return;
    const rows = await this.prisma.$queryRaw<Array<{ agent_id: string; seq: number }>>`
      SELECT agent_id, max(seq) AS seq FROM agent_events WHERE agent_id = ANY(${agentIds}) GROUP BY agent_id`;
    for (const row of rows) this.wakeAgent(row.agent_id, (waiter) => row.seq > waiter.afterSeq, 'events');
  }
}
