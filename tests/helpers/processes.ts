import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AppConfig } from '../../config/env';
import { waitUntil } from './wait';

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

/**
 * A product process a test stops the way deploys and crashes do and starts again, and that knows
 * when it exited on its own (a crash a supervisor would restart).
 */
export interface RestartableProcess {
  readonly running: boolean;
  /** Starts the process and resolves once `ready` says it serves (or throws after a minute). */
  start(): Promise<void>;
  /** SIGTERM: a graceful stop (a deploy), waiting for the exit; SIGKILL: a crash. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** How often the process exited on its own (not through `stop`). */
  readonly crashes: number;
  /** Whether its last exit was such a crash (until the next `start`). */
  readonly crashed: boolean;
  /** Resident memory in MB (NaN while down). */
  rssMb(): Promise<number>;
}

export function restartableProcess(
  what: string,
  launch: () => ChildProcess,
  ready: () => Promise<boolean>,
): RestartableProcess {
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const exits = { crashes: 0, crashed: false, stopping: false };
  return {
    get running() {
      return child !== null;
    },
    get crashes() {
      return exits.crashes;
    },
    get crashed() {
      return exits.crashed;
    },
    async start() {
      const started = launch();
      child = started;
      exits.crashed = false;
      exited = new Promise((resolve) =>
        started.once('exit', () => {
          if (!exits.stopping && child === started) {
            exits.crashes += 1;
            exits.crashed = true;
            child = null;
          }
          resolve();
        }),
      );
      await waitUntil(ready, 60_000, 200);
      if (!(await ready())) throw new Error(`the ${what} process did not serve within a minute`);
    },
    async stop(signal = 'SIGTERM') {
      const current = child;
      if (!current) return;
      exits.stopping = true;
      current.kill(signal);
      // A graceful stop that hangs past the shutdown grace time and some is a crash after all.
      const timer = setTimeout(() => current.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      exits.stopping = false;
      child = null;
    },
    async rssMb() {
      if (!child?.pid) return NaN;
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
    },
  };
}
