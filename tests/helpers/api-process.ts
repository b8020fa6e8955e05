import type { ChildProcess } from 'node:child_process';
import type { AppConfig } from '../../config/env';
import { startApiProcess, type ProcessOutput } from './processes';
import { waitUntil } from './wait';
import { stopChild } from './worker-process';

/** The real API process (dist/api/server.js) of a test instance, on its API_PORT, that a test stops and starts again. */
export interface ApiProcess {
  readonly running: boolean;
  /** Starts the process and resolves once GET /health answers. */
  start(): Promise<void>;
  /** SIGTERM: a graceful stop (a deploy), waiting for the exit; SIGKILL: a crash. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** How often the process exited on its own (not through `stop`): a crash a supervisor would restart. */
  readonly crashes: number;
  /** Whether its last exit was such a crash (until the next `start`). */
  readonly crashed: boolean;
}

export function apiProcess(
  config: AppConfig,
  settings: Record<string, string> = {},
  output: ProcessOutput = {},
): ApiProcess {
  const healthUrl = `http://127.0.0.1:${config.API_PORT}/health`;
  const healthy = (): Promise<boolean> =>
    fetch(healthUrl, { signal: AbortSignal.timeout(2_000) }).then(
      (response) => response.ok,
      () => false,
    );
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
      const started = startApiProcess(config, settings, output);
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
      await waitUntil(healthy, 60_000, 200);
      if (!(await healthy())) throw new Error(`the API process did not answer ${healthUrl} within a minute`);
    },
    async stop(signal = 'SIGTERM') {
      const current = child;
      if (!current) return;
      exits.stopping = true;
      await stopChild(current, exited, signal);
      exits.stopping = false;
      child = null;
    },
  };
}
