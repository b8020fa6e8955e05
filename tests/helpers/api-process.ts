import type { AppConfig } from '../../config/env';
import { restartableProcess, startApiProcess, type ProcessOutput, type RestartableProcess } from './processes';

/**
 * The real API process (dist/api/server.js) of a test instance, on its API_PORT; `start` resolves once GET /health
 * answers.
 */
export type ApiProcess = RestartableProcess;

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
  return restartableProcess('API', () => startApiProcess(config, settings, output), healthy);
}
