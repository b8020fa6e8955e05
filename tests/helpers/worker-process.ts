import type { AppConfig } from '../../config/env';
import { freePort } from './ports';
import { restartableProcess, startWorkerProcess, type ProcessOutput, type RestartableProcess } from './processes';

/**
 * The real worker process (dist/workers/main.js) of a test instance, with its metrics (its own and the
 * Temporal SDK's) on ports of its own, that a test stops the way deploys and crashes do and starts again.
 * `start` resolves once it serves its metrics (its Temporal workers are created).
 */
export interface WorkerProcess extends RestartableProcess {
  readonly metricsUrl: string;
  /** GET /metrics (empty while the process is down). */
  metrics(): Promise<string>;
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
  const metrics = async (): Promise<string> => {
    try {
      const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
      return response.ok ? await response.text() : '';
    } catch {
      return '';
    }
  };
  const restartable = restartableProcess(
    'worker',
    () => startWorkerProcess(config, overrides, output),
    async () => (await metrics()).includes('temporal_'),
  );
  return Object.assign(restartable, { metricsUrl, metrics });
}
