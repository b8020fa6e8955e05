import type { Prisma, PrismaClient } from '../../prisma/client';
import { isTerminalState, type AgentState } from '../../shared/vocabulary';
import type { AgentEventData, AgentEventView } from '../../shared/agent-events';

type Db = Prisma.TransactionClient | PrismaClient;

/**
 * The two statements that append one event to an agent's log with the next sequence number. They
 * must run in one transaction (an interactive one, or a batch with the change the event reports):
 * the advisory lock orders writers of the same agent, so numbers never repeat or skip.
 */
export function appendEventStatements(
  db: Db,
  agentId: string,
  event: AgentEventData,
): [Prisma.PrismaPromise<number>, Prisma.PrismaPromise<number>] {
  const data = JSON.stringify(event);
  return [
    db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${agentId}))`,
    db.$executeRaw`INSERT INTO agent_events (agent_id, seq, type, data)
      SELECT ${agentId}, COALESCE(MAX(seq), 0) + 1, ${event.type}, ${data}::jsonb FROM agent_events
        WHERE agent_id = ${agentId}`,
  ];
}

/** Appends one event inside the caller's interactive transaction. */
export async function appendEvent(tx: Prisma.TransactionClient, agentId: string, event: AgentEventData): Promise<void> {
  const [lock, insert] = appendEventStatements(tx, agentId, event);
  await lock;
  await insert;
}

/** The first event of a new agent's log (created with its row). */
export function firstEvent(state: AgentState): { seq: number; type: string; data: Prisma.InputJsonObject } {
  const data: AgentEventData = { type: 'state', state, detail: 'spawn accepted', error: null };
  return { seq: 1, type: data.type, data };
}

/**
 * Stores an agent's result and appends its result event; a retry after the result was stored
 * updates it without telling the event stream twice.
 */
export async function storeResult(
  prisma: PrismaClient,
  agentId: string,
  result: Omit<Prisma.AgentResultUncheckedCreateInput, 'agentId'>,
  event: Extract<AgentEventData, { type: 'result' }>,
): Promise<void> {
  await prisma.$transaction(async (tx) => {
    const told = (await tx.agentResult.count({ where: { agentId } })) > 0;
    await tx.agentResult.upsert({ where: { agentId }, create: { agentId, ...result }, update: result });
    if (!told) await appendEvent(tx, agentId, event);
  });
}

/**
 * The statement that stores an agent's result bundle (its one branch at `commitSha`, from `prerequisites`): a retry
 * replaces what an earlier attempt stored. A statement, so a caller can put it in one transaction with the status.
 */
export function storeBundleStatement(
  prisma: PrismaClient,
  agentId: string,
  bundle: { commitSha: string; prerequisites: string[]; data: Buffer },
): Prisma.PrismaPromise<unknown> {
  const row = {
    commitSha: bundle.commitSha,
    prerequisites: bundle.prerequisites,
    data: new Uint8Array(bundle.data),
    sizeBytes: bundle.data.length,
  };
  return prisma.agentResultBundle.upsert({ where: { agentId }, create: { agentId, ...row }, update: row });
}

/** The agent's events after `afterSeq`, oldest first. */
export async function eventsAfter(db: Db, agentId: string, afterSeq: number, limit = 100): Promise<AgentEventView[]> {
  const rows = await db.agentEvent.findMany({
    where: { agentId, seq: { gt: afterSeq } },
    orderBy: { seq: 'asc' },
    take: limit,
  });
  return rows.map((row) => ({
    agentId,
    seq: row.seq,
    type: row.type as AgentEventView['type'],
    at: row.at.toISOString(),
    data: row.data as unknown as AgentEventData,
  }));
}

/** Whether an event is the agent's last: its final state. */
export const isFinalEvent = (event: AgentEventView): boolean =>
  event.data.type === 'state' && isTerminalState(event.data.state);
