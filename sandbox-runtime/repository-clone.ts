import { lookup } from 'node:dns/promises';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runProgram, type ProgramOptions } from '../platform/program-runner';
import {
  admitRepository,
  RepositoryRefused,
  type CloneSource,
  type RepositoryPolicy,
} from '../platform/repository-policy';
import type { RepositoryCache } from './repository-cache';

export const CLONE_TIMEOUT_MS = 10 * 60 * 1000;

/** The repository cannot be cloned: refused by the policy, or not available. Retrying gets the same. */
export class CloneFailed extends Error {
  override readonly name = 'CloneFailed';
}

export interface CloneOptions {
  /** Stops git (a kill); the clone then rejects with the signal's reason. */
  signal: AbortSignal;
  /** Where git's own words go when it fails (the operator's log, never the answer). */
  onGitError: (stderr: string) => void;
  /** The host's repository cache: the clone is copied from its mirror, refreshed first. Null: clone directly. */
  cache: RepositoryCache | null;
}

/**
 * Clones an agent's repository on the host, before the agent touches the checkout (git never runs on
 * the host in an agent-controlled repository). The policy is checked again here, on the real path and
 * the resolved address (a symlink swapped or a DNS answer changed since the spawn gains nothing), and
 * git runs with nothing of the worker's: no system or global configuration, no credential helpers,
 * no hooks, no SSH keys, no environment but PATH, only the one transport the source needs, no
 * redirects, and a time limit. Its size is bounded by the workspace it clones into. A failure never
 * says whether a path exists on the host; the operator finds git's own words in the worker's log.
 * With a repository cache, git fetches the branch into the host's mirror of the repository (under the same rules) and
 * the checkout is copied from there; its origin is the repository itself, as with a direct clone.
 */
export async function cloneRepository(
  policy: RepositoryPolicy,
  input: { repository: string; branch: string; dir: string; allowLocal: boolean },
  options: CloneOptions,
): Promise<{ headSha: string | null }> {
  // A retried launch reuses its checkout.
  if (await stat(path.join(input.dir, '.git')).catch(() => null)) return { headSha: null };
  let source: CloneSource;
  try {
    source = await admitRepository(policy, input.repository, { allowLocal: input.allowLocal });
  } catch (error) {
    if (error instanceof RepositoryRefused) throw new CloneFailed(error.message);
    throw error;
  }
  const unavailable = (): CloneFailed =>
    new CloneFailed(
      `cannot clone ${input.repository} (branch ${input.branch}): the repository or the branch is not available`,
    );

  const home = await mkdtemp(path.join(os.tmpdir(), 'clone-home-'));
  const hardened = await hardenedGit(policy, source, home);
  if (!hardened) {
    await rm(home, { recursive: true, force: true });
    throw unavailable();
  }
  const { env, config: gitConfig } = hardened;
  const origin = source.kind === 'local' ? source.path : source.url;
  const run: ProgramOptions = { env, timeoutMs: CLONE_TIMEOUT_MS, maxBuffer: 1024 * 1024, signal: options.signal };
  const gitFailed = (error: unknown): never => {
    // A kill during the clone: git was stopped, and the caller learns why.
    if (options.signal.aborted) throw options.signal.reason;
    options.onGitError(stderrOf(error));
    throw unavailable();
  };
  // git is told this one folder is safe to read: a quota's file system belongs to the sandbox user.
  const inCheckout = ['-c', 'core.hooksPath=/dev/null', '-c', `safe.directory=${input.dir}`, '-C', input.dir];
  try {
    // A cache that fails (a mirror damaged on disk) never fails a spawn a direct clone would serve: the direct clone
    // follows, and the mirror is made again by the next spawn.
    if (options.cache) {
      const cached = await copyFromCache(
        options.cache,
        { origin, branch: input.branch, dir: input.dir },
        gitConfig,
        run,
      ).catch((error: unknown) => {
        if (options.signal.aborted) throw options.signal.reason;
        options.onGitError(`the repository cache failed: ${stderrOf(error)}`);
        return null;
      });
      if (cached) return cached;
    }
    await runProgram(
      'git',
      [
        ...gitConfig,
        'clone',
        '--quiet',
        '--template=',
        ...(source.kind === 'local' ? ['--no-local'] : []),
        '--branch',
        input.branch,
        '--single-branch',
        '--',
        origin,
        input.dir,
      ],
      run,
    ).catch(gitFailed);
    if (options.cache) await options.cache.discard(origin).catch(() => undefined);
    // The fresh checkout, before anything of the agent ran in it: its commit is read here, not in the sandbox.
    const { stdout } = await runProgram('git', [...inCheckout, 'rev-parse', 'HEAD'], { env, timeoutMs: 30_000 });
    return { headSha: stdout.trim() };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * git's settings for one repository the policy admitted: only its transport, no credential helper, no hooks, no
 * redirects, the connection pinned to an address the outbound policy permits (DNS is asked once, here), and an
 * environment with nothing of the worker's (HOME is `home`). Null when no permitted address serves the host.
 */
export async function hardenedGit(
  policy: RepositoryPolicy,
  source: CloneSource,
  home: string,
): Promise<{ config: string[]; env: Record<string, string> } | null> {
  const config = [
    ['protocol.allow', 'never'],
    [`protocol.${source.kind === 'local' ? 'file' : source.scheme}.allow`, 'always'],
    ['credential.helper', ''],
    ['core.hooksPath', '/dev/null'],
    ['http.followRedirects', 'false'],
  ];
  if (source.kind === 'remote' && (source.scheme === 'https' || source.scheme === 'http')) {
    const permitted = (await lookup(source.host, { all: true }).catch(() => [])).find((address) =>
      policy.outbound.permits(address.address),
    );
    if (!permitted) return null;
    config.push([
      'http.curloptResolve',
      `${source.host}:${source.port}:${permitted.family === 6 ? `[${permitted.address}]` : permitted.address}`,
    ]);
  }
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_SSH_COMMAND: 'ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null',
  };
  return { config: config.flatMap(([key, value]) => ['-c', `${key}=${value}`]), env };
}

/** What git said on its way out (its standard error), or the error itself. */
export const stderrOf = (error: unknown): string => (error as { stderr?: string }).stderr?.trim() || String(error);

/** Refreshes the repository's mirror and copies the checkout from it (see RepositoryCache). */
async function copyFromCache(
  cache: RepositoryCache,
  clone: { origin: string; branch: string; dir: string },
  gitConfig: string[],
  run: ProgramOptions,
): Promise<{ headSha: string }> {
  const mirror = await cache.refresh(clone.origin, clone.branch, { config: gitConfig, options: run });
  return await cache.cloneFrom(mirror, clone.branch, clone.dir, clone.origin, run);
}
