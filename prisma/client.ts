import { PrismaPg } from '@prisma/adapter-pg';
import { postgresConnection } from '../config/env';
import { PrismaClient } from './generated/client';

export type { PrismaClient } from './generated/client';
export { Prisma } from './generated/client';
export type { FederationCommand, FederationConnection } from './generated/client';
export type Database = PrismaClient;

/** One client per process: it owns a pg connection pool. */
export function createPrismaClient(databaseUrl: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(postgresConnection(databaseUrl)) });
}
