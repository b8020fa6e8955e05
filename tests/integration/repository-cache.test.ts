import { spawn as spawnProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OutboundPolicy } from '../../platform/outbound-http';
import { repositoryPolicy } from '../../platform/repository-policy';
import { CloneFailed, cloneRepository } from '../../sandbox-runtime/repository-clone';
import { RepositoryCache } from '../../sandbox-runtime/repository-cache';
import { createRepository, git } from '../helpers/git-repo';

/**
 * The host's repository cache with real git: clones copied from a mirror that spawns refresh, correct while many
 * spawns of one repository run at once and commits land meanwhile, never sharing a file with the mirror, and pruned by
 * the retention.
 */
describe('repository cache', () => {
  let root: string;
  let source: string;
  let cache: RepositoryCache;
  const gitErrors: string[] = [];

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'repository-cache-'));
    source = await createRepository({ 'README.md': '# cached\n' });
    cache = new RepositoryCache(path.join(root, 'cache'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(source, { recursive: true, force: true });
  });

  const policy = () =>
    repositoryPolicy(
      { REPOSITORY_SCHEMES: 'https', REPOSITORY_HOSTS: '', REPOSITORY_LOCAL_ROOTS: path.dirname(source) },
      new OutboundPolicy(''),
    );
  let clones = 0;
  const clone = async (branch = 'main', withCache: RepositoryCache | null = cache) => {
    const dir = path.join(root, `checkout-${++clones}`);
    const { headSha } = await cloneRepository(
      policy(),
      { repository: source, branch, dir, allowLocal: true },
      { signal: new AbortController().signal, onGitError: (stderr) => gitErrors.push(stderr), cache: withCache },
    );
    return { dir, headSha: headSha ?? '' };
  };
  const commit = async (file: string): Promise<string> => {
    await writeFile(path.join(source, file), `${file}\n`);
    await git(source, 'add', '-A');
    await git(source, '-c', 'user.name=Test', '-c', 'user.email=test@localhost', 'commit', '-q', '-m', file);
    return git(source, 'rev-parse', 'HEAD');
  };
  /** Every file under `dir` with a link count above one (a hard link shared with another tree). */
  async function sharedFiles(dir: string): Promise<string[]> {
    const shared: string[] = [];
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      if ((await stat(file)).nlink > 1) shared.push(file);
    }
    return shared;
  }

  it('clones a checkout equal to a direct clone, from a mirror it keeps, sharing no file with it', async () => {
    const tip = await git(source, 'rev-parse', 'HEAD');
    const direct = await clone('main', null);
    const cached = await clone();
    expect(cached.headSha).toBe(tip);
    expect(direct.headSha).toBe(tip);
    expect(await readFile(path.join(cached.dir, 'README.md'), 'utf8')).toBe('# cached\n');
    // The mirror holds the branch; the checkout's origin is the repository itself, as a direct clone's is.
    expect(await git(cache.mirrorOf(source), 'rev-parse', 'refs/heads/main')).toBe(tip);
    expect(await git(cached.dir, 'remote', 'get-url', 'origin')).toBe(
      await git(direct.dir, 'remote', 'get-url', 'origin'),
    );
    expect(await git(cached.dir, 'branch', '--show-current')).toBe('main');
    // Nothing in the checkout points at the mirror or shares its inodes: the sandbox owns the checkout.
    await expect(stat(path.join(cached.dir, '.git/objects/info/alternates'))).rejects.toThrow();
    expect(await sharedFiles(cached.dir)).toEqual([]);
    expect(await sharedFiles(cache.mirrorOf(source))).toEqual([]);
    expect(gitErrors).toEqual([]);
  });

  it('gives each of many concurrent spawns a correct checkout while commits land on the branch', async () => {
    const landed: string[] = [await git(source, 'rev-parse', 'HEAD')];
    const committing = (async () => {
      for (let index = 0; index < 5; index++) landed.push(await commit(`during-${index}.txt`));
    })();
    const checkouts = await Promise.all(Array.from({ length: 12 }, () => clone()));
    await committing;
    for (const { dir, headSha } of checkouts) {
      // Each is a commit the branch had at some moment, checked out completely.
      expect(landed).toContain(headSha);
      expect(await git(dir, 'rev-parse', 'HEAD')).toBe(headSha);
      expect(await git(dir, 'status', '--porcelain')).toBe('');
      await git(dir, 'fsck', '--no-progress');
    }
    // A spawn after the last commit sees it: the mirror is refreshed, not served stale.
    expect((await clone()).headSha).toBe(landed.at(-1));
    expect(gitErrors).toEqual([]);
  });

  it('refreshes each branch a spawn asks for, and refuses a branch the repository does not have', async () => {
    await git(source, 'checkout', '-q', '-b', 'feature');
    const featureTip = await commit('feature.txt');
    await git(source, 'checkout', '-q', 'main');
    expect((await clone('feature')).headSha).toBe(featureTip);
    await expect(clone('no-such-branch')).rejects.toBeInstanceOf(CloneFailed);
    expect(gitErrors.pop()).toMatch(/no-such-branch/);
  });

  it('clones directly when the mirror is damaged, says so in the log, and makes it again next time', async () => {
    const mirror = cache.mirrorOf(source);
    await rm(mirror, { recursive: true, force: true });
    await writeFile(mirror, 'not a repository'); // a mirror git cannot use
    const tip = await git(source, 'rev-parse', 'main');
    const { dir, headSha } = await clone();
    expect(headSha).toBe(tip);
    await git(dir, 'fsck', '--no-progress');
    expect(gitErrors.splice(0).some((line) => line.startsWith('the repository cache failed'))).toBe(true);
    await expect(stat(mirror)).rejects.toThrow(); // discarded
    expect((await clone()).headSha).toBe(tip);
    expect(await git(mirror, 'rev-parse', 'refs/heads/main')).toBe(tip);
    expect(gitErrors).toEqual([]);
  });

  it('prunes mirrors no spawn used within the retention, never a recent one or one in use', async () => {
    const other = await createRepository({ 'other.txt': 'other\n' });
    const inUse = await createRepository({ 'busy.txt': 'busy\n' });
    try {
      const otherCache = new RepositoryCache(cache.dir);
      for (const repository of [other, inUse]) {
        await cloneRepository(
          policy(),
          { repository, branch: 'main', dir: path.join(root, `checkout-${++clones}`), allowLocal: true },
          { signal: new AbortController().signal, onGitError: (stderr) => gitErrors.push(stderr), cache: otherCache },
        );
      }
      const old = new Date(Date.now() - 48 * 3600 * 1000);
      for (const repository of [other, inUse])
        await utimes(path.join(cache.mirrorOf(repository), 'FETCH_HEAD'), old, old);
      // Another process holds the busy mirror's lock (a clone copying from it).
      const holder = spawnProcess('flock', ['-s', `${cache.mirrorOf(inUse)}.lock`, 'sleep', '30']);
      await new Promise((resolve) => setTimeout(resolve, 300));
      try {
        expect(await cache.prune(0)).toBe(0); // 0 keeps everything
        expect(await cache.prune(24)).toBe(1);
      } finally {
        holder.kill();
      }
      await expect(stat(cache.mirrorOf(other))).rejects.toThrow();
      expect((await stat(cache.mirrorOf(inUse))).isDirectory()).toBe(true);
      expect((await stat(cache.mirrorOf(source))).isDirectory()).toBe(true);
      // A spawn after the pruning makes the mirror again.
      expect((await clone()).headSha).toBe(await git(source, 'rev-parse', 'main'));
    } finally {
      await rm(other, { recursive: true, force: true });
      await rm(inUse, { recursive: true, force: true });
    }
  });
});
