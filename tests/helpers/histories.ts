import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/** Golden histories, one folder per version (v0.2.0/…); tests/replay says which replay against today's code. */
export const HISTORIES_ROOT = path.resolve(__dirname, '../fixtures/histories');

const { version } = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as {
  version: string;
};
/** The folder new recordings go to: the version in package.json, before its release is tagged. */
export const CURRENT_HISTORIES_DIR = path.join(HISTORIES_ROOT, `v${version}`);

/**
 * With RECORD_HISTORIES=1 (npm run record-histories), saves a finished workflow's history, in the
 * Temporal CLI's JSON format, as a golden fixture that tests/replay replays on every run. A released
 * version's histories are kept as they are: recording refuses once its tag exists (bump the version).
 */
export async function recordHistoryIfRequested(workflowId: string, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const run = promisify(execFile);
  const tags = await run('git', ['tag', '--list', `v${version}`], { cwd: HISTORIES_ROOT });
  if (tags.stdout.trim() !== '')
    throw new Error(`v${version} is released: its histories are kept; bump the version to record`);
  const cli = process.env.TEST_TEMPORAL_CLI ?? '';
  const address = process.env.TEST_TEMPORAL_ADDRESS ?? '';
  const show = ['workflow', 'show', '--workflow-id', workflowId, '--address', address, '--output', 'json'];
  const { stdout } = await run(cli, show, { maxBuffer: 64 * 1024 * 1024 });
  await mkdir(CURRENT_HISTORIES_DIR, { recursive: true });
  await writeFile(path.join(CURRENT_HISTORIES_DIR, `${name}.json`), stdout);
}
