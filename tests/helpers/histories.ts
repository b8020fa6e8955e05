import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

export const HISTORIES_DIR = path.resolve(__dirname, '../fixtures/histories');

/**
 * With RECORD_HISTORIES=1 (npm run record-histories), saves a finished workflow's history, in the
 * Temporal CLI's JSON format, as a golden fixture that tests/replay replays on every run.
 */
export async function recordHistoryIfRequested(workflowId: string, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const cli = process.env.TEST_TEMPORAL_CLI ?? '';
  const address = process.env.TEST_TEMPORAL_ADDRESS ?? '';
  const { stdout } = await promisify(execFile)(cli, ['workflow', 'show', '--workflow-id', workflowId, '--address', address, '--output', 'json'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  await writeFile(path.join(HISTORIES_DIR, `${name}.json`), stdout);
}
