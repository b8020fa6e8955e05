import { PrismaPg } from '@prisma/adapter-pg';
import { postgresConnection } from '../config/env';
import { Prisma, PrismaClient } from './generated/client';

export type { PrismaClient } from './generated/client';
export { Prisma };
export type { FederationCommand, FederationConnection } from './generated/client';
export type Database = PrismaClient;

/**
 * One client per process: it owns a pg connection pool. A transaction waits up to 10 s for a connection (Prisma's
 * default is 2 s): under a burst of agents every connection can be busy for longer, and a write that waits is better
 * than one that fails.
 */
export function createPrismaClient(databaseUrl: string): PrismaClient {
  return new PrismaClient({
    adapter: new PrismaPg(postgresConnection(databaseUrl)),
    transactionOptions: { maxWait: 10_000, timeout: 30_000 },
  });
}

/**
 * Whether a statement failed because its row does not exist (P2025, or a findUniqueOrThrow's): trying again gets the
 * same answer, unlike a pool or a transaction that could not start in time, or a lost connection.
 */
export function isMissingRow(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2025';
}

/** Whether a write failed on a unique constraint (P2002): someone else wrote that row first. */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}
