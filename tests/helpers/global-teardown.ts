import { rm } from 'node:fs/promises';
import { Client } from 'pg';
import { postgresConnection } from '../../config/env';

export default async function globalTeardown(): Promise<void> {
  await globalThis.testTemporalEnv?.teardown();
  if (process.env.TEST_WORKFLOW_BUNDLE) await rm(process.env.TEST_WORKFLOW_BUNDLE, { force: true });
  for (const url of [process.env.TEST_DATABASE_URL, process.env.TEST_PEER_DATABASE_URL]) {
    if (!url) continue;
    const { database, ...server } = postgresConnection(url);
    const admin = new Client({ ...server, database: 'postgres' });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.end();
  }
}
