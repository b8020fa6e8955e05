import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestInstance } from './instance';

const run = promisify(execFile);

/**
 * Looks into a finished agent's workspace. After teardown a workspace is its unmounted ext4 image
 * (where quotas use loop devices), so it is mounted read-only for the look; otherwise the folder is used.
 */
export async function withWorkspace<T>(
  instance: TestInstance,
  agentId: string,
  look: (dir: string) => Promise<T>,
): Promise<T> {
  // A workspace that claimed a warm sandbox is a link to its slot, whose image lies beside the slot.
  const dir = await realpath(path.join(instance.config.DATA_DIR, 'workspaces', agentId)).catch(() =>
    path.join(instance.config.DATA_DIR, 'workspaces', agentId),
  );
  const image = `${dir}.img`;
  if (!existsSync(image)) return look(dir);
  const mountPoint = await mkdtemp(path.join(os.tmpdir(), 'workspace-look-'));
  await run('mount', ['-o', 'loop,ro', image, mountPoint]);
  try {
    return await look(mountPoint);
  } finally {
    await run('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  }
}

/**
 * Detaches every mount at or under `dir`, deepest first and lazily (a process may still hold one), so
 * the folder can be removed: workspaces of agents a test left running, a private Docker engine's layers.
 */
export async function unmountAllUnder(dir: string): Promise<void> {
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const under = mounts
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter(
      (mountPoint): mountPoint is string =>
        mountPoint !== undefined && (mountPoint === dir || mountPoint.startsWith(`${dir}/`)),
    );
  for (const mountPoint of under.reverse()) await run('umount', ['-l', mountPoint]).catch(() => undefined);
}
