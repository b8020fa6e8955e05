import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { execInContainer } from './containers';

/** Where each live container's memory cgroup counts its OOM kills (found once: a tool call needs no inspect for it). */
const oomFiles = new Map<string, string>();

/** Forgets what was found of a container that is going (a container of the same name later is another one). */
export function forgetOomFile(containerName: string): void {
  oomFiles.delete(containerName);
}

const readOomKills = async (file: string): Promise<number | null> => {
  const count = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'))?.[1];
  return count === undefined ? null : Number(count);
};

/**
 * The OOM kills the container's memory cgroup counted, read on the host through its init process (cgroup v1 or v2);
 * null where the host's /proc does not show it.
 */
async function hostOomKillCount(docker: Docker, containerName: string): Promise<number | null> {
  const known = oomFiles.get(containerName);
  if (known) {
    const count = await readOomKills(known).catch(() => undefined);
    if (count !== undefined) return count;
    oomFiles.delete(containerName); // another container of that name since
  }
  try {
    const { Pid } = (await docker.getContainer(containerName).inspect()).State;
    if (!Pid) return null;
    const lines = (await readFile(`/proc/${Pid}/cgroup`, 'utf8')).split('\n');
    const v1 = lines.find((line) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(line));
    const file = v1
      ? path.join('/sys/fs/cgroup/memory', v1.split(':')[2] ?? '', 'memory.oom_control')
      : path.join('/sys/fs/cgroup', lines.find((line) => line.startsWith('0::'))?.slice(3) ?? '', 'memory.events');
    const count = await readOomKills(file);
    if (count !== null) oomFiles.set(containerName, file);
    return count;
  } catch {
    return null;
  }
}

/**
 * How many processes the container's memory cgroup has killed: read on the host (no process started),
 * or from inside the sandbox where the host's view is not available (a worker in a container).
 */
export async function oomKillCount(docker: Docker, containerName: string): Promise<number> {
  const onHost = await hostOomKillCount(docker, containerName);
  if (onHost !== null) return onHost;
  const probe = await execInContainer(
    docker,
    containerName,
    [
      'sh',
      '-c',
      'cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | ' +
        'grep -E "^oom_kill " | head -n 1',
    ],
    { timeoutMs: 10_000, maxOutputBytes: 1024 },
  ).catch(() => null);
  return Number(/oom_kill (\d+)/.exec(probe?.stdout ?? '')?.[1] ?? 0);
}
