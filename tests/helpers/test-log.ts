import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';

/**
 * Where this jest worker's instances log (LOG_LEVEL and up) and the Temporal SDK's warnings go: a file
 * per worker process, so the terminal shows progress and failures only.
 */
export const TEST_LOG_FILE = path.resolve(
  __dirname,
  '../../data/test-logs',
  `jest-worker-${process.env.JEST_WORKER_ID ?? process.pid}.log`,
);
mkdirSync(path.dirname(TEST_LOG_FILE), { recursive: true });
Runtime.install({
  logger: new DefaultLogger('WARN', (entry) => {
    const at = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
    appendFileSync(TEST_LOG_FILE, `${at} [${entry.level}] ${entry.message} ${JSON.stringify(entry.meta ?? {})}\n`);
  }),
});
