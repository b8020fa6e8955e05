import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { loadConfig, postgresConnection } from '../config/env';
import { runMain } from '../platform/main';
import { StartupError } from '../platform/preflight';

const ROOT = path.resolve(__dirname, '../..');
const MIGRATIONS_DIR = path.join(ROOT, 'prisma/migrations');

/** Names of the migrations Prisma has finished on this database (none when it was never migrated). */
async function appliedMigrations(databaseUrl: string): Promise<Set<string>> {
  const client = new Client({ ...postgresConnection(databaseUrl), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const table = await client.query("SELECT to_regclass('public._prisma_migrations') AS name");
    if ((table.rows[0] as { name: string | null }).name === null) return new Set();
    const rows = await client.query(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    );
    return new Set(rows.rows.map((row: { migration_name: string }) => row.migration_name));
  } finally {
    await client.end();
  }
}

/**
 * Applies pending migrations with `prisma migrate deploy`, and skips the CLI when every migration in
 * prisma/migrations is already applied: its WebAssembly schema engine holds the process for 10 s
 * after finishing, which would otherwise slow every start.
 */
runMain('migrate', async () => {
  const config = loadConfig();
  const local = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
  const applied = await appliedMigrations(config.DATABASE_URL);
  if (local.every((name) => applied.has(name))) return;

  process.stderr.write('==> applying database migrations\n');
  const result = spawnSync(path.join(ROOT, 'node_modules/.bin/prisma'), ['migrate', 'deploy'], {
    cwd: ROOT,
    env: { ...process.env, PRISMA_QUERY_ENGINE_LIBRARY: process.env.PRISMA_QUERY_ENGINE_LIBRARY ?? '/dev/null' },
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    process.stderr.write(result.stdout + result.stderr);
    throw new StartupError('prisma migrate deploy failed (its output is above)');
  }
});
