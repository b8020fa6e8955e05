import type { Request, Response } from 'express';
import { eventsAfter, isFinalEvent } from '../domain/agents/agent-events';
import type { PrismaClient } from '../prisma/client';
import { isTerminalState } from '../shared/agents';
import { ApiError } from './errors';

/** How often a stream looks for new events, and how often an idle one sends a comment to keep proxies from closing it. */
const POLL_INTERVAL_MS = 250;
const KEEP_ALIVE_MS = 15_000;

/** Where a client resumes: the Last-Event-ID header (what EventSource sends on reconnect), else ?lastEventId=, else the start. */
export function resumePoint(req: Request): number {
  const header = req.header('last-event-id');
  const query = typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined;
  const raw = header ?? query;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,9}$/.test(raw)) throw new ApiError(400, 'invalid_last_event_id', 'Last-Event-ID must be the id of an event of this stream (a non-negative integer)');
  return Number(raw);
}

/** ?follow=false: send what is there and end, instead of following the run until it ends. */
export const followsRun = (req: Request): boolean => req.query.follow !== 'false';

/**
 * Server-Sent Events of one agent: each event of its log once, in order, with its sequence number
 * as the SSE id, so a client that reconnects with Last-Event-ID misses nothing and sees nothing twice.
 * The stream ends after the agent's final state (or at once when it already ended before and
 * nothing is left to send).
 */
export async function streamAgentEvents(req: Request, res: Response, prisma: PrismaClient, agentId: string, afterSeq: number, follow = true): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const client = { gone: false }; // set when the client disconnects
  req.on('close', () => {
    client.gone = true;
  });
  let last = afterSeq;
  let lastWrite = Date.now();
  const write = (text: string): void => {
    res.write(text);
    lastWrite = Date.now();
  };
  write(`retry: 1000\n\n`);
  while (!client.gone) {
    const events = await eventsAfter(prisma, agentId, last);
    for (const event of events) {
      write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      last = event.seq;
      if (isFinalEvent(event)) {
        res.end();
        return;
      }
    }
    if (events.length > 0) continue;
    if (!follow) break;
    // An agent that ended without a final event in its log (before this log existed) has nothing more to say.
    const agent = await prisma.agent.findUnique({ where: { id: agentId }, select: { state: true } });
    if (!agent || isTerminalState(agent.state)) {
      if ((await eventsAfter(prisma, agentId, last, 1)).length === 0) break;
      continue;
    }
    if (Date.now() - lastWrite > KEEP_ALIVE_MS) write(': keep-alive\n\n');
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  res.end();
}
