import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { AppConfig } from '../../config/env';
import { freePort } from './ports';
import { startWorkerProcess, type ProcessOutput } from './processes';
import { waitUntil } from './wait';

/**
 * The real worker process (dist/workers/main.js) of a test instance, with its metrics (its own and the
 * Temporal SDK's) on ports of its own, that a test stops the way deploys and crashes do and starts again.
 */
export interface WorkerProcess {
  readonly metricsUrl: string;
  readonly running: boolean;
  /** Starts the process and resolves once it serves its metrics (its Temporal workers are created). */
  start(): Promise<void>;
  /** SIGTERM: a graceful stop (a deploy), waiting for the exit; SIGKILL: a crash. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** How often the process exited on its own (not through `stop`): a crash a supervisor would restart. */
  readonly crashes: number;
  /** Whether its last exit was such a crash (until the next `start`). */
  readonly crashed: boolean;
  /** GET /metrics (empty while the process is down). */
  metrics(): Promise<string>;
  /** Resident memory in MB (NaN while down). */
  rssMb(): Promise<number>;
}

export async function workerProcess(
  config: AppConfig,
  settings: Record<string, string> = {},
  output: ProcessOutput = {},
): Promise<WorkerProcess> {
  const metricsPort = await freePort();
  const sdkMetricsPort = await freePort();
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const overrides = {
    ...settings,
    WORKER_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
    TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${sdkMetricsPort}`,
  };
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const exits = { crashes: 0, crashed: false, stopping: false };
  const metrics = async (): Promise<string> => {
    try {
      const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
      return response.ok ? await response.text() : '';
    } catch {
      return '';
    }
  };
  return {
    metricsUrl,
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
      const started = startWorkerProcess(config, overrides, output);
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
      await waitUntil(async () => (await metrics()).includes('temporal_'), 60_000, 200);
      if (!(await metrics()).includes('temporal_'))
        throw new Error('the worker process did not serve its metrics within a minute');
    },
    async stop(signal = 'SIGTERM') {
      const current = child;
      if (!current) return;
      exits.stopping = true;
      await stopChild(current, exited, signal);
      exits.stopping = false;
      child = null;
    },
    metrics,
    async rssMb() {
      if (!child?.pid) return NaN;
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
    },
  };
}

/** Signals a child and waits for its exit; a graceful stop that hangs past the shutdown grace time and some is a crash after all. */
export async function stopChild(
  child: ChildProcess,
  exited: Promise<void>,
  signal: 'SIGTERM' | 'SIGKILL',
): Promise<void> {
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}
