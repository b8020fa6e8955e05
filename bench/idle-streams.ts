import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { postgresConnection } from '../config/env';
import { TERMINAL_STATES } from '../shared/vocabulary';
import { waitUntil } from '../tests/helpers/wait';
import { WORK } from './bench-model';
import { acceptedAgentId, spawnBody, waitForRunningTool, waitForState, type BenchInstance } from './harness';

export interface IdleStreamFigures {
  streams: number;
  sessions: number;
  /** PostgreSQL transactions per second of the instance's database with nothing open, then with them open. */
  withoutPerSecond: number;
  withStreamsPerSecond: number;
  measuredMs: number;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Transactions PostgreSQL committed in the instance's database so far (every statement outside a transaction is one).
 */
async function committed(bench: BenchInstance): Promise<number> {
  const database = postgresConnection(bench.instance.config.DATABASE_URL).database;
  const rows = await bench.instance.prisma.$queryRaw<
    Array<{ total: bigint }>
  >`SELECT xact_commit + xact_rollback AS total FROM pg_stat_database WHERE datname = ${database}`;
  return Number(rows[0]?.total ?? 0);
}

async function ratePerSecond(bench: BenchInstance, ms: number): Promise<number> {
  // Backends report their counts about once a second: wait that out on both ends.
  await pause(1_500);
  const before = await committed(bench);
  await pause(ms);
  const after = await committed(bench);
  return (after - before - 1) / (ms / 1000); // less the reading itself
}

/**
 * Push, not poll: PostgreSQL's query rate while `count` event streams follow and `count` live
 * sessions (with callbacks) wait for agents that say nothing (queued behind one that holds the only
 * slot), against the same instance with none open. Streams and deliveries wake on LISTEN/NOTIFY.
 */
export async function idleStreamLoad(
  bench: BenchInstance,
  repository: string,
  count: number,
  measureMs: number,
): Promise<IdleStreamFigures> {
  const holder = acceptedAgentId(await bench.post('/agents/spawn', spawnBody('idle-holder', repository, WORK.hold)));
  await waitForState(bench.instance, holder, 'running');
  await waitForRunningTool(bench.instance, holder);
  const withoutPerSecond = await ratePerSecond(bench, measureMs);

  let delivered = 0;
  const receiver: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      delivered += 1;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks`;
  const streams = new AbortController();
  const sessionIds: string[] = [];
  try {
    for (let index = 0; index < count; index++) {
      const id = `idle-${index}`;
      const response = await bench.post('/orchestrator/sessions/spawn', {
        task: { id, title: `Idle ${id}`, repository, branch: 'main' },
        callback_url: callbackUrl,
      });
      if (response.status !== 202) throw new Error(`session spawn refused: ${response.status} ${response.text}`);
      sessionIds.push((response.body as { sessionId: string }).sessionId);
    }
    // Every session's first events (spawning, queued) reach the receiver; then nothing happens.
    await waitUntil(
      async () =>
        delivered >= count * 2 &&
        (await bench.instance.prisma.agent.count({ where: { id: { in: sessionIds }, state: 'queued' } })) === count,
      120_000,
      250,
    );
    for (const sessionId of sessionIds) {
      void fetch(`${bench.instance.baseUrl}/agents/${sessionId}/events?lastEventId=1000`, {
        headers: { authorization: `Bearer ${bench.token}` },
        signal: streams.signal,
      })
        .then(async (response) => {
          await response.body?.pipeTo(new WritableStream()); // read and drop
        })
        .catch(() => undefined);
    }
    await pause(2_000);
    const withStreamsPerSecond = await ratePerSecond(bench, measureMs);
    return { streams: count, sessions: count, withoutPerSecond, withStreamsPerSecond, measuredMs: measureMs };
  } finally {
    streams.abort();
    await Promise.all(
      [holder, ...sessionIds].map((agentId) => bench.post(`/agents/${agentId}/kill`).catch(() => undefined)),
    );
    await waitUntil(
      async () =>
        (await bench.instance.prisma.agent.count({
          where: { id: { in: [holder, ...sessionIds] }, state: { notIn: [...TERMINAL_STATES] } },
        })) === 0,
      120_000,
      500,
    );
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  }
}
