import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { AppConfig } from '../../config/env';

const ROOT = path.resolve(__dirname, '../..');

/** A built entry point of the product (dist/…) as its own process, configured exactly like a test instance. */
function startProcess(entry: string, config: AppConfig, overrides: Record<string, string>): ChildProcess {
  // Every resolved setting, as environment variables (unset optional ones are left out).
  const settings = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(config)) as Record<string, string | number>).map(([key, value]) => [key, String(value)]));
  return spawn(process.execPath, [path.join(ROOT, entry)], {
    cwd: ROOT,
    stdio: 'ignore',
    // Metrics on ports of the kernel's choosing: several worker processes of the tests run at once.
    env: { ...process.env, ...settings, LOG_LEVEL: 'error', WORKER_METRICS_ADDRESS: '127.0.0.1:0', TEMPORAL_METRICS_ADDRESS: '127.0.0.1:0', ...overrides },
  });
}

/** The real worker process (dist/workers/main.js). */
export const startWorkerProcess = (config: AppConfig, overrides: Record<string, string> = {}): ChildProcess => startProcess('dist/workers/main.js', config, overrides);

/** The real API process (dist/api/server.js); give it an API_PORT of its own. */
export const startApiProcess = (config: AppConfig, overrides: Record<string, string> = {}): ChildProcess => startProcess('dist/api/server.js', config, overrides);
