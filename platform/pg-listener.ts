import { Client } from 'pg';
import { postgresConnection } from '../config/env';
import type { Logger } from './logger';

/**
 * One PostgreSQL connection per process that LISTENs on a few channels and hands each notification to
 * its handlers. When the connection drops (PostgreSQL restarted, the network broke) it reconnects with
 * backoff and tells `onReconnect` handlers: notifications sent meanwhile are gone, so readers look at
 * the tables again. A notification only says "look"; the rows are the truth.
 */
export interface PgListener {
  /** Handles the payloads of one channel (one of those the listener was started with). */
  on(channel: string, handler: (payload: string) => void): void;
  /** Called after every reconnection (not the first connection). */
  onReconnect(handler: () => void): void;
  /** Whether the connection is up and listening. */
  readonly listening: boolean;
  /** Resolves once the first connection listens (or rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;

export function startPgListener(databaseUrl: string, channels: string[], log: Logger): PgListener {
  const handlers = new Map<string, Array<(payload: string) => void>>(channels.map((channel) => [channel, []]));
  const reconnectHandlers: Array<() => void> = [];
  const state = { listening: false, closed: false, connectedOnce: false, retryMs: FIRST_RETRY_MS };
  let client: Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let signalReady: () => void = () => undefined;
  const firstConnection = new Promise<void>((resolve) => (signalReady = resolve));

  const scheduleReconnect = (): void => {
    if (state.closed || retry !== null) return;
    retry = setTimeout(() => {
      retry = null;
      void connect();
    }, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, MAX_RETRY_MS);
  };

  const lost = (current: Client, error?: Error): void => {
    if (client !== current) return; // an older connection's late event
    client = null;
    if (state.listening) log.warn({ err: error }, 'PostgreSQL notifications: connection lost; reconnecting');
    state.listening = false;
    current.end().catch(() => undefined);
    scheduleReconnect();
  };

  async function connect(): Promise<void> {
    const current = new Client({
      ...postgresConnection(databaseUrl),
      keepAlive: true,
      application_name: 'agent-orchestrator-listener',
    });
    client = current;
    current.on('error', (error) => lost(current, error));
    current.on('end', () => lost(current));
    current.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    try {
      await current.connect();
      for (const channel of channels) await current.query(`LISTEN ${channel}`);
    } catch (error) {
      lost(current, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (client !== current || state.closed) return;
    state.listening = true;
    state.retryMs = FIRST_RETRY_MS;
    if (state.connectedOnce) {
      log.info('PostgreSQL notifications: listening again');
      for (const handler of reconnectHandlers) handler();
    }
    state.connectedOnce = true;
    signalReady();
  }

  void connect();
  return {
    on(channel, handler) {
      const list = handlers.get(channel);
      if (!list) throw new Error(`the listener was not started for channel ${channel}`);
      list.push(handler);
    },
    onReconnect(handler) {
      reconnectHandlers.push(handler);
    },
    get listening() {
      return state.listening;
    },
    async ready(timeoutMs = 10_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`PostgreSQL notifications: not listening after ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([firstConnection, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      state.closed = true;
      if (retry) clearTimeout(retry);
      const current = client;
      client = null;
      state.listening = false;
      await current?.end().catch(() => undefined);
    },
  };
}
