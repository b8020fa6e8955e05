import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import type { AppConfig } from '../../config/env';

const ROOT = path.resolve(__dirname, '../..');

/** Where a process's output goes: nowhere (a test's terminal stays quiet), or appended to a log file at info level. */
export interface ProcessOutput {
  logFile?: string;
}

/** A built entry point of the product (dist/…) as its own process, configured exactly like a test instance. */
function startProcess(
  entry: string,
  config: AppConfig,
  overrides: Record<string, string>,
  output: ProcessOutput,
): ChildProcess {
  // Every resolved setting, as environment variables (unset optional ones are left out).
  const settings = Object.fromEntries(
    Object.entries(JSON.parse(JSON.stringify(config)) as Record<string, string | number>).map(([key, value]) => [
      key,
      String(value),
    ]),
  );
  const logFd = output.logFile ? openSync(output.logFile, 'a') : null;
  try {
    return spawn(process.execPath, [path.join(ROOT, entry)], {
      cwd: ROOT,
      stdio: logFd === null ? 'ignore' : ['ignore', logFd, logFd],
      // Metrics on ports of the kernel's choosing: several worker processes of the tests run at once.
      env: {
        ...process.env,
        ...settings,
        LOG_LEVEL: logFd === null ? 'error' : 'info',
        WORKER_METRICS_ADDRESS: '127.0.0.1:0',
        TEMPORAL_METRICS_ADDRESS: '127.0.0.1:0',
        ...overrides,
      },
    });
  } finally {
    if (logFd !== null) closeSync(logFd); // the child holds its own copy
  }
}

/** The real worker process (dist/workers/main.js). */
export const startWorkerProcess = (
  config: AppConfig,
  overrides: Record<string, string> = {},
  output: ProcessOutput = {},
): ChildProcess => startProcess('dist/workers/main.js', config, overrides, output);

/** The real API process (dist/api/server.js); give it an API_PORT of its own. */
export const startApiProcess = (
  config: AppConfig,
  overrides: Record<string, string> = {},
  output: ProcessOutput = {},
): ChildProcess => startProcess('dist/api/server.js', config, overrides, output);
