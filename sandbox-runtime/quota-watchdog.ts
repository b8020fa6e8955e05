import { lstat, readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';

/**
 * Where a workspace's quota is only watched (no loop devices for this worker), it is watched all the
 * time a sandbox lives, between tool calls too: a background process the agent left behind writes
 * while the model thinks. Each live sandbox is looked at on its own schedule, sooner the closer it is
 * to its quota: the interval is half the time the remaining room would last at MAX_WRITE_RATE. A look
 * costs one read of the container's CPU counter; only a sandbox that used CPU since is measured (a walk
 * of its workspace, like du -sb). Past the quota the container is frozen at once (its cgroup's
 * freezer, or docker pause where the cgroup is not visible) and the run is stopped: the activity in
 * flight is told, and the next one sees the breach. A worker that restarts finds the breach again at
 * its first look. A writer at the measured disk speed of these machines (about 800 MB/s) overshoots a
 * 1 GB quota by well under 10 % when the worker has its process to itself. Blocks reserved without
 * writing them (fallocate) cost no CPU to speak of: loop-device quotas are the real bound for
 * untrusted code.
 */
const MAX_WRITE_RATE_BYTES_PER_SECOND = 2e9;
const MIN_INTERVAL_MS = 20;
const MAX_INTERVAL_MS = 2_000;

export interface QuotaBreach {
  usedBytes: number;
  quotaBytes: number;
}

interface Watched {
  agentId: string;
  containerName: string;
  workspace: string;
  quotaBytes: number;
  /** The container's cgroup files, once known; null where they are not visible to this worker. */
  cgroup: CgroupFiles | null | undefined;
  lastCpu: string;
  usedBytes: number;
  timer: NodeJS.Timeout | null;
  breach: QuotaBreach | null;
  listeners: Set<(breach: QuotaBreach) => void>;
}

/** Bytes under `dir` as `du -sb` counts them: every entry's size (directories too), a hard-linked file once. */
export async function apparentSize(dir: string): Promise<number> {
  const seen = new Set<number>();
  let total = 0;
  const walk = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      const info = await lstat(full).catch(() => null);
      if (!info) continue;
      if (info.nlink > 1 && !info.isDirectory()) {
        if (seen.has(info.ino)) continue;
        seen.add(info.ino);
      }
      total += info.size;
      if (entry.isDirectory()) await walk(full);
    }
  };
  const root = await lstat(dir).catch(() => null);
  if (!root) return 0;
  total += root.size;
  await walk(dir);
  return total;
}

/**
 * The container's cgroup files this watch reads and writes, from its init process (cgroup v1 or v2); null where not
 * visible.
 */
interface CgroupFiles {
  /** A number that grows with the container's CPU time. */
  cpu: string;
  /**
   * Writing `freeze` there stops every process of the container at once (as docker pause does, without the round trip).
   */
  freezer: { file: string; freeze: string };
}

async function cgroupFiles(docker: Docker, containerName: string): Promise<CgroupFiles | null> {
  try {
    const { Pid } = (await docker.getContainer(containerName).inspect()).State;
    if (!Pid) return null;
    const lines = (await readFile(`/proc/${Pid}/cgroup`, 'utf8')).split('\n');
    const v1 = (controller: string): string | null => {
      const line = lines.find((candidate) => new RegExp(`^\\d+:([^:]*,)?${controller}(,[^:]*)?:`).test(candidate));
      if (!line) return null;
      const [, controllers = '', cgroup = ''] = line.split(':');
      return path.join('/sys/fs/cgroup', controllers, cgroup);
    };
    const cpuacct = v1('cpuacct');
    const freezer = v1('freezer');
    if (cpuacct && freezer)
      return {
        cpu: path.join(cpuacct, 'cpuacct.usage'),
        freezer: { file: path.join(freezer, 'freezer.state'), freeze: 'FROZEN' },
      };
    const unified = lines.find((line) => line.startsWith('0::'));
    if (!unified) return null;
    const dir = path.join('/sys/fs/cgroup', unified.slice(3));
    return { cpu: path.join(dir, 'cpu.stat'), freezer: { file: path.join(dir, 'cgroup.freeze'), freeze: '1' } };
  } catch {
    return null;
  }
}

export class QuotaWatchdog {
  private readonly watched = new Map<string, Watched>();
  private stopped = false;

  constructor(
    private readonly docker: Docker,
    private readonly onBreach: (agentId: string, breach: QuotaBreach) => void = () => undefined,
  ) {}

  /** Starts watching an agent's live sandbox (idempotent). */
  watch(agentId: string, containerName: string, workspace: string, quotaMb: number): void {
    if (this.stopped || this.watched.has(agentId)) return;
    const entry: Watched = {
      agentId,
      containerName,
      workspace,
      quotaBytes: quotaMb * 1024 * 1024,
      cgroup: undefined,
      lastCpu: '',
      usedBytes: 0,
      timer: null,
      breach: null,
      listeners: new Set(),
    };
    this.watched.set(agentId, entry);
    this.schedule(entry, 0);
  }

  unwatch(agentId: string): void {
    const entry = this.watched.get(agentId);
    if (entry?.timer) clearTimeout(entry.timer);
    this.watched.delete(agentId);
  }

  /** The breach that froze the agent's sandbox, if any. */
  breachOf(agentId: string): QuotaBreach | null {
    return this.watched.get(agentId)?.breach ?? null;
  }

  /**
   * Calls `listener` once the agent's sandbox goes past its quota (at once if it already did); returns the unsubscribe.
   */
  whenBreached(agentId: string, listener: (breach: QuotaBreach) => void): () => void {
    const entry = this.watched.get(agentId);
    if (!entry) return () => undefined;
    if (entry.breach) {
      listener(entry.breach);
      return () => undefined;
    }
    entry.listeners.add(listener);
    return () => entry.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    for (const agentId of [...this.watched.keys()]) this.unwatch(agentId);
  }

  private schedule(entry: Watched, delayMs: number): void {
    if (this.stopped || this.watched.get(entry.agentId) !== entry || entry.breach) return;
    entry.timer = setTimeout(() => void this.look(entry).catch(() => this.schedule(entry, MAX_INTERVAL_MS)), delayMs);
    entry.timer.unref();
  }

  private async look(entry: Watched): Promise<void> {
    entry.cgroup ??= await cgroupFiles(this.docker, entry.containerName);
    const cpu = entry.cgroup ? await readFile(entry.cgroup.cpu, 'utf8').catch(() => '') : '';
    // Nothing ran in the sandbox since the last look (and the counter is readable): nothing was written.
    const idle = cpu !== '' && cpu === entry.lastCpu;
    entry.lastCpu = cpu;
    if (!idle) {
      entry.usedBytes = await apparentSize(await realpath(entry.workspace).catch(() => entry.workspace));
      if (entry.usedBytes > entry.quotaBytes) {
        await this.freeze(entry);
        return;
      }
    }
    const roomMs = ((entry.quotaBytes - entry.usedBytes) / MAX_WRITE_RATE_BYTES_PER_SECOND) * 1000;
    this.schedule(entry, Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, roomMs / 2)));
  }

  private async freeze(entry: Watched): Promise<void> {
    const breach = { usedBytes: entry.usedBytes, quotaBytes: entry.quotaBytes };
    entry.breach = breach;
    // The cgroup's freezer stops the writers now (docker pause is a round trip slower, and refuses a frozen container).
    const frozen = entry.cgroup
      ? await writeFile(entry.cgroup.freezer.file, entry.cgroup.freezer.freeze).then(
          () => true,
          () => false,
        )
      : false;
    if (!frozen) {
      await this.docker
        .getContainer(entry.containerName)
        .pause()
        .catch(() => undefined); // gone or already paused: nothing writes any more
    }
    this.onBreach(entry.agentId, breach);
    for (const listener of entry.listeners) listener(breach);
    entry.listeners.clear();
  }
}
