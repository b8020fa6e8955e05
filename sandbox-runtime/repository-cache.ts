import { createHash } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { runProgram, type ProgramOptions } from '../platform/program-runner';
import { CoalescedTask, untilAborted } from './coalesced-task';

/** How long a spawn waits for another one's fetch or the retention's removal of the same mirror. */
const LOCK_WAIT_SECONDS = 600;
/** Touched by every fetch: when the mirror was last used, for the retention. */
const LAST_USED = 'FETCH_HEAD';

/**
 * A per-host cache of the repositories agents clone: one bare mirror per repository, refreshed with a fetch of the
 * branch a spawn asks for, and cloned from with a plain file copy. A clone of a known repository then moves only what
 * changed since the last spawn over the network.
 *
 * Concurrency, across every worker process of the host: git itself keeps a fetch and a copy of one mirror apart (a
 * fetch adds objects before it moves a ref, and a copy reads the refs before the objects), so both hold the mirror's
 * lock shared and run side by side; only the retention's removal holds it exclusively. Fetches of one branch in one
 * process are shared (below); two processes fetching at once may find a ref locked, and that fetch is tried again.
 * The kernel releases a lock whose holder died. Lock files stay (empty, one per
 * repository ever cached): removing one a waiter holds open would let two holders in. Objects are copied, never hard
 * linked: the workspace belongs to the sandbox user, and a shared inode would let one agent change what every later
 * clone of that repository reads. Automatic gc is off in a mirror, so a clone in progress never loses a pack.
 */
export class RepositoryCache {
  /** The fetch running per mirror and branch in this process, and the one queued behind it. */
  private readonly fetches = new Map<string, CoalescedTask>();

  constructor(readonly dir: string) {}

  /** The mirror of a repository: named by a hash of its URL or real path. */
  mirrorOf(source: string): string {
    return path.join(this.dir, `${createHash('sha256').update(source).digest('hex').slice(0, 32)}.git`);
  }

  private lockOf(mirror: string): string {
    return `${mirror}.lock`;
  }

  /**
   * Fetches `branch` of `source` into its mirror (created on first use), with the caller's hardened git configuration
   * and environment. Spawns of one repository and branch share fetches: one that asks while a fetch runs gets the next
   * one, which starts after it asked, so a burst fetches a few times, not once per spawn, and no spawn gets a tip older
   * than its request. Rejects like the program (a ProgramError with git's stderr); the caller's signal stops its wait,
   * not the fetch the others share.
   */
  async refresh(source: string, branch: string, git: { config: string[]; options: ProgramOptions }): Promise<string> {
    const mirror = this.mirrorOf(source);
    const key = `${mirror} ${branch}`;
    const fetches = this.fetches.get(key) ?? new CoalescedTask();
    this.fetches.set(key, fetches);
    try {
      await untilAborted(
        fetches.run(() => this.fetchInto(mirror, source, branch, git)),
        git.options.signal,
      );
    } finally {
      if (fetches.idle) this.fetches.delete(key);
    }
    return mirror;
  }

  private async fetchInto(
    mirror: string,
    source: string,
    branch: string,
    git: { config: string[]; options: ProgramOptions },
  ): Promise<void> {
    // Shared by every spawn waiting for it: no one caller's signal or home folder.
    const { signal: _callers, ...common } = git.options;
    const options: ProgramOptions = { ...common, env: { ...common.env, HOME: this.dir } };
    const shared = ['-s', '-w', String(LOCK_WAIT_SECONDS), '-F', this.lockOf(mirror)];
    const fetch = [
      ...git.config,
      '-c',
      'gc.auto=0',
      '-c',
      'maintenance.auto=false',
      '-C',
      mirror,
      'fetch',
      '--quiet',
      '--no-tags',
      '--',
      source,
      `+refs/heads/${branch}:refs/heads/${branch}`,
    ];
    const made = async (): Promise<boolean> => (await stat(path.join(mirror, 'HEAD')).catch(() => null)) !== null;
    await mkdir(this.dir, { recursive: true });
    // On first use (or after the retention removed it) the mirror is made under the same lock; git init is idempotent.
    const initThenFetch = 'git init --quiet --bare --template= "$0" && exec git "$@"';
    const fetchOnce = async (): Promise<void> => {
      if (await made()) await runProgram('flock', [...shared, 'git', ...fetch], options);
      else await runProgram('flock', [...shared, 'sh', '-c', initThenFetch, mirror, ...fetch], options);
    };
    // Another process's fetch of the same ref holds its lock file for a moment: once more, then the error stands.
    await fetchOnce().catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await fetchOnce();
    });
  }

  /**
   * Clones `branch` from the mirror into `dir` (objects copied) while the mirror cannot be removed, names `origin` as
   * the checkout's remote, and answers the commit checked out. One program for the three: each start costs.
   */
  async cloneFrom(mirror: string, branch: string, dir: string, origin: string, options: ProgramOptions) {
    const script = [
      'set -e',
      'git -c protocol.allow=never -c protocol.file.allow=always -c core.hooksPath=/dev/null clone --quiet ' +
        '--template= --no-hardlinks --branch "$1" --single-branch -- "$0" "$2"',
      // git is told this one folder is safe to read: a quota's file system belongs to the sandbox user.
      'git -c core.hooksPath=/dev/null -c safe.directory="$2" -C "$2" remote set-url origin "$3"',
      'exec git -c core.hooksPath=/dev/null -c safe.directory="$2" -C "$2" rev-parse HEAD',
    ].join('\n');
    const shared = ['-s', '-w', String(LOCK_WAIT_SECONDS), '-F', this.lockOf(mirror)];
    const { stdout } = await runProgram('flock', [...shared, 'sh', '-c', script, mirror, branch, dir, origin], options);
    return { headSha: stdout.trim() };
  }

  /**
   * A bare copy of `branch` from the mirror into `dir`, for the worker's own use (a result's delivery): its objects are
   * hard-linked (nothing of the sandbox's reaches it), so it costs little and outlives the mirror's removal.
   */
  async bareCopy(mirror: string, branch: string, dir: string, options: ProgramOptions): Promise<void> {
    const clone = ['git', '-c', 'core.hooksPath=/dev/null', 'clone', '--quiet', '--bare', '--template=', '--local'];
    const shared = ['-s', '-w', String(LOCK_WAIT_SECONDS), '-F', this.lockOf(mirror)];
    await runProgram('flock', [...shared, ...clone, '--branch', branch, '--single-branch', '--', mirror, dir], options);
  }

  /** Removes the mirror of `source` unless a spawn uses it right now (a failed one: the next spawn makes it anew). */
  async discard(source: string): Promise<void> {
    await this.discardMirror(this.mirrorOf(source));
  }

  /** Fails at once when the mirror's lock is held. */
  private async discardMirror(mirror: string): Promise<void> {
    await runProgram('flock', ['-x', '-n', '-F', this.lockOf(mirror), 'rm', '-rf', '--', mirror]);
  }

  /**
   * Removes the mirrors no spawn fetched into for `retentionHours` (skipping one in use: its lock is held). Returns
   * how many.
   */
  async prune(retentionHours: number, now = Date.now()): Promise<number> {
    if (retentionHours <= 0) return 0;
    const cutoff = now - retentionHours * 3600 * 1000;
    const mirrors = (await readdir(this.dir).catch(() => [])).filter((name) => name.endsWith('.git'));
    let removed = 0;
    for (const name of mirrors) {
      const mirror = path.join(this.dir, name);
      const used = await stat(path.join(mirror, LAST_USED))
        .catch(() => stat(mirror))
        .catch(() => null);
      if (!used || used.mtimeMs >= cutoff) continue;
      const taken = await this.discardMirror(mirror).then(
        () => true,
        () => false, // in use right now: kept until the next pruning
      );
      if (taken) removed += 1;
    }
    return removed;
  }
}
