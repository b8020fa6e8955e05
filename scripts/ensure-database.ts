import { Client } from 'pg';
import { loadConfig, postgresConnection, redactUrl } from '../config/env';
import { runMain } from '../platform/main';
import { StartupError } from '../platform/preflight';

/** Creates the instance's database when it does not exist yet (connecting through the `postgres` database). */
runMain('database', async () => {
  const config = loadConfig();
  const target = postgresConnection(config.DATABASE_URL);
  const admin = new Client({ ...target, database: 'postgres', connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StartupError(`PostgreSQL at ${redactUrl(config.DATABASE_URL)} is unreachable (${reason})`);
  }
  try {
    const existing = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [target.database]);
    if (existing.rowCount === 0) {
      await admin.query(`CREATE DATABASE "${target.database.replace(/"/g, '""')}"`);
      process.stdout.write(`created database ${target.database}\n`);
    }
  } finally {
    await admin.end();
  }
});
