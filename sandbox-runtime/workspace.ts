import { existsSync } from 'node:fs';
import { mkdir, readdir, realpath, rm, rmdir, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { runProgram } from '../platform/program-runner';
import { SANDBOX_UID } from './container-spec';

const run = runProgram;

/**
 * An agent's workspace on the host, with a disk quota. Where the worker may mount loop devices (root,
 * /dev/loop-control, mkfs.ext4), the workspace is the mount of its own ext4 image of the quota's size:
 * writes past it fail with "no space left" and no other agent or the host notices. Elsewhere (a worker
 * without that privilege) the quota is watched: the workspace's size is measured while tools run and
 * a run that goes past it is stopped. Both say so in the agent's state.
 */
export type QuotaMode = 'loop' | 'watchdog';

export async function detectQuotaMode(): Promise<QuotaMode> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/loop-control')) return 'watchdog';
  const mkfs = await run('mkfs.ext4', ['-V']).then(
    () => true,
    () => false,
  );
  return mkfs ? 'loop' : 'watchdog';
}

export const imageOf = (dir: string): string => `${dir}.img`;

/** Whether `dir` is a mount point (its device differs from its parent's). */
export async function isMounted(dir: string): Promise<boolean> {
  const [own, parent] = await Promise.all([stat(dir).catch(() => null), stat(path.dirname(dir)).catch(() => null)]);
  return own !== null && parent !== null && own.dev !== parent.dev;
}

/**
 * Creates the workspace folder (in loop mode: the mount of a fresh image of `quotaMb`). Idempotent: a retried launch
 * finds it.
 */
export async function prepareWorkspace(dir: string, quotaMb: number, mode: QuotaMode): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (mode === 'watchdog' || (await isMounted(dir))) return;
  const image = imageOf(dir);
  if (!existsSync(image)) {
    await run('truncate', ['-s', `${quotaMb}M`, image]);
    // No reserved blocks, and the root of the file system belongs to the sandbox user. The image is a
    // fresh sparse file, whose unwritten blocks read as zeros: zeroing its journal and inode tables
    // wrote 33 MB per workspace (6.6 GB in a burst of 200 spawns) for nothing.
    await run('mkfs.ext4', [
      '-q',
      '-F',
      '-m',
      '0',
      '-E',
      `root_owner=${SANDBOX_UID}:${SANDBOX_UID},lazy_itable_init=1,lazy_journal_init=1`,
      image,
    ]);
  }
  await run('mount', ['-o', 'loop,nosuid,nodev', image, dir]);
  await rmdir(path.join(dir, 'lost+found')).catch(() => undefined);
}

/** An agent's workspace may be a link to the warm-pool slot it claimed (see warm-pool.ts). */
const resolved = (dir: string): Promise<string> => realpath(dir).catch(() => dir);

/** Unmounts the workspace (the image stays for inspection until the retention removes it). Idempotent. */
export async function releaseWorkspace(dir: string): Promise<void> {
  const real = await resolved(dir);
  if (!(await isMounted(real))) return;
  // A process of a killed sandbox may hold it a moment longer: detach lazily then.
  await run('umount', [real]).catch(() => run('umount', ['-l', real]));
}

/** Removes the workspace and its image (for a claimed warm slot: the slot, its image and the link to it). */
export async function removeWorkspace(dir: string): Promise<void> {
  const real = await resolved(dir);
  await releaseWorkspace(real);
  await rm(real, { recursive: true, force: true });
  await rm(imageOf(real), { force: true });
  if (real !== dir) await rm(dir, { force: true });
}

/**
 * Whether the workspace has reached its quota: its file system is full (loop mode), or `du` says it is past the quota
 * (watchdog mode).
 */
export async function quotaReached(dir: string, mode: QuotaMode, quotaMb: number): Promise<boolean> {
  if (mode === 'loop') {
    const fs = await statfs(dir);
    return fs.bavail * fs.bsize < 1024 * 1024;
  }
  const { stdout } = await run('du', ['-sb', '--', await resolved(dir)]);
  return Number(stdout.split('\t')[0]) > quotaMb * 1024 * 1024;
}

/** The workspaces (folders, or links to claimed warm slots) under the workspaces directory, by agent id. */
export async function listWorkspaces(workspacesDir: string): Promise<string[]> {
  const entries = await readdir(workspacesDir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => (entry.isDirectory() || entry.isSymbolicLink()) && !entry.name.includes('.link-'))
    .map((entry) => entry.name);
}
