import { rm } from 'node:fs/promises';
import { adminClient } from './databases';

export default async function globalTeardown(): Promise<void> {
  await globalThis.testTemporalEnv?.teardown();
  if (process.env.TEST_WORKFLOW_BUNDLE) await rm(process.env.TEST_WORKFLOW_BUNDLE, { force: true });
  const { TEST_TEMPLATE_DATABASE_URL, TEST_DATABASE_PREFIX } = process.env;
  if (!TEST_TEMPLATE_DATABASE_URL || !TEST_DATABASE_PREFIX) return;
  // Every database of this run: the template and each instance's copy.
  const admin = adminClient(TEST_TEMPLATE_DATABASE_URL);
  await admin.connect();
  const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [
    `${TEST_DATABASE_PREFIX}%`,
  ]);
  for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  await admin.end();
}
