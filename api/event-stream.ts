import type { Request, Response } from 'express';
import type { AgentEventFeed, Wake } from '../domain/agents/agent-event-feed';
import { eventsAfter, isFinalEvent } from '../domain/agents/agent-events';
import type { PrismaClient } from '../prisma/client';
import { isTerminalState } from '../shared/vocabulary';
import type { ModelProgress } from '../shared/agent-events';
import { ApiError } from './errors';

/** How often an idle stream sends a comment, so that proxies do not close it. */
const KEEP_ALIVE_MS = 15_000;

/**
 * Where a client resumes: the Last-Event-ID header (what EventSource sends on reconnect), else ?lastEventId=, else the
 * start.
 */
export function resumePoint(req: Request): number {
  const header = req.header('last-event-id');
  const query = typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined;
  const raw = header ?? query;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,9}$/.test(raw))
    throw new ApiError(
      400,
      'invalid_last_event_id',
      'Last-Event-ID must be the id of an event of this stream (a non-negative integer)',
    );
  return Number(raw);
}

/** ?follow=false: send what is there and end, instead of following the run until it ends. */
export const followsRun = (req: Request): boolean => req.query.follow !== 'false';

export interface EventStreamDeps {
  prisma: PrismaClient;
  /** Wakes the stream when the agent's log grows (LISTEN/NOTIFY): an idle stream asks PostgreSQL nothing. */
  feed: AgentEventFeed;
}

/**
 * Server-Sent Events of one agent: each event of its log once, in order, with its sequence number
 * as the SSE id, so a client that reconnects with Last-Event-ID misses nothing and sees nothing twice.
 * While the model's reply streams, what it writes comes as `progress` events without an id (live
 * only, never stored, so they take no place in the numbering). The stream ends after the agent's final
 * state (or at once when it already ended before and nothing is left to send).
 */
export async function streamAgentEvents(
  req: Request,
  res: Response,
  deps: EventStreamDeps,
  agentId: string,
  afterSeq: number,
  follow = true,
): Promise<void> {
  const { prisma, feed } = deps;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const gone = new AbortController(); // aborted when the client disconnects
  req.on('close', () => gone.abort());
  let last = afterSeq;
  res.write(`retry: 1000\n\n`);
  let wake: Wake = 'events';
  while (!gone.signal.aborted) {
    // Waiting starts before looking, so an event appended in between still wakes the stream.
    const looked = new AbortController();
    const next = feed.wait(agentId, last, KEEP_ALIVE_MS, AbortSignal.any([gone.signal, looked.signal]));
    if (wake === 'progress') {
      const agent = await prisma.agent.findUnique({ where: { id: agentId }, select: { modelProgress: true } });
      const progress = agent?.modelProgress as ModelProgress | null | undefined;
      if (progress)
        res.write(`event: progress\ndata: ${JSON.stringify({ agentId, type: 'progress', data: progress })}\n\n`);
    } else if (wake === 'events') {
      const events = await eventsAfter(prisma, agentId, last);
      for (const event of events) {
        res.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
        last = event.seq;
        if (isFinalEvent(event)) {
          looked.abort();
          res.end();
          return;
        }
      }
      const ended = events.length === 0 && (!follow || (await hasEnded(prisma, agentId)));
      if (events.length > 0 || ended) looked.abort();
      if (ended) break;
      if (events.length > 0) continue;
    } else if (wake === 'timeout') {
      res.write(': keep-alive\n\n');
    } else {
      break; // the API is shutting down: the client reconnects with Last-Event-ID
    }
    wake = await next;
  }
  res.end();
}

/** An agent that ended without a final event in its log (or is unknown) has nothing more to say. */
async function hasEnded(prisma: PrismaClient, agentId: string): Promise<boolean> {
  const agent = await prisma.agent.findUnique({ where: { id: agentId }, select: { state: true } });
  return !agent || isTerminalState(agent.state);
}
