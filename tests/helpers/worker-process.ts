import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { AppConfig } from '../../config/env';

const ROOT = path.resolve(__dirname, '../..');

/** The real worker process (dist/workers/main.js), configured exactly like a test instance. */
export function startWorkerProcess(config: AppConfig, overrides: Record<string, string> = {}): ChildProcess {
  // Every resolved setting, as environment variables (unset optional ones are left out).
  const settings = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(config)) as Record<string, string | number>).map(([key, value]) => [key, String(value)]));
  return spawn(process.execPath, [path.join(ROOT, 'dist/workers/main.js')], {
    cwd: ROOT,
    stdio: 'ignore',
    env: { ...process.env, ...settings, LOG_LEVEL: 'error', ...overrides },
  });
}
