import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { defineConfig } from 'prisma/config';
import { loadConfig, postgresConnection } from './config/env';

// The CLI runs migrations through the WebAssembly schema engine and the pg driver adapter: Prisma's
// native engines cannot be downloaded on the machines this project targets.
export default defineConfig({
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
  engine: 'js',
  experimental: { adapter: true },
  // A short idle timeout lets the CLI exit as soon as it is done instead of holding the pool for 10 s.
  adapter: () =>
    Promise.resolve(
      new PrismaPg({ ...postgresConnection(loadConfig().DATABASE_URL), idleTimeoutMillis: 100, allowExitOnIdle: true }),
    ),
});
