import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function git(dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', 'safe.directory=*', '-C', dir, ...args]);
  return stdout.trim();
}

/** A local repository with one commit on `main`, for agents to clone. */
export async function createRepository(files: Record<string, string> = { 'README.md': '# Demo\n' }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agent-repo-'));
  await git(dir, 'init', '-q', '-b', 'main');
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  await git(dir, 'add', '-A');
  await git(dir, '-c', 'user.name=Test', '-c', 'user.email=test@localhost', 'commit', '-q', '-m', 'initial');
  return dir;
}
