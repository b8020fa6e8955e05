import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { postgresConnection } from '../../config/env';

/**
 * Every test instance gets a database of its own, as a real instance would: a copy of the template
 * that the global setup migrated once (CREATE DATABASE … TEMPLATE takes a fraction of a second,
 * where a migration takes seconds). The global teardown drops every database of the run.
 */
export function adminClient(databaseUrl: string): Client {
  return new Client({ ...postgresConnection(databaseUrl), database: 'postgres' });
}

export async function createTestDatabase(): Promise<string> {
  const { TEST_TEMPLATE_DATABASE_URL, TEST_DATABASE_PREFIX } = process.env;
  if (!TEST_TEMPLATE_DATABASE_URL || !TEST_DATABASE_PREFIX)
    throw new Error('global setup did not run (TEST_* variables missing)');
  const template = postgresConnection(TEST_TEMPLATE_DATABASE_URL).database;
  const name = `${TEST_DATABASE_PREFIX}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = adminClient(TEST_TEMPLATE_DATABASE_URL);
  await admin.connect();
  try {
    // Copies of one template made at the same moment can collide ("being accessed by other users"): try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        break;
      } catch (error) {
        if (attempt >= 20 || !/being accessed by other users/.test(String(error))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  } finally {
    await admin.end();
  }
  return Object.assign(new URL(TEST_TEMPLATE_DATABASE_URL), { pathname: `/${name}` }).toString();
}
