import type { Prisma, PrismaClient } from '../../prisma/client';

/**
 * Records that a spoke answered for a federated agent: the hub's API (events), the poll and the workflow
 * all write it, in any order, so it only ever moves forward.
 */
export async function recordContact(
  db: PrismaClient | Prisma.TransactionClient,
  agentId: string,
  at: Date,
): Promise<void> {
  await db.$executeRaw`UPDATE federated_agents
    SET last_contact_at = GREATEST(COALESCE(last_contact_at, ${at}), ${at}) WHERE agent_id = ${agentId}`;
}
