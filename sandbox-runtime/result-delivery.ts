import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runProgram, type ProgramOptions } from '../platform/program-runner';
import { admitRepository, RepositoryRefused, type RepositoryPolicy } from '../platform/repository-policy';
import type { DeliveryFailure, DeliveryOutcome } from '../shared/vocabulary';
import { InvalidBundle, readBundleHeader, resultBundleOf } from './git-bundle';
import { RepositoryCache } from './repository-cache';
import { hardenedGit, stderrOf } from './repository-clone';

/** The operator's credentials for pushes, read by git on the worker (never by the sandbox, never logged). */
export interface DeliveryCredentials {
  /** A git-credential-store file (`https://user:token@host` per line), for https remotes. */
  credentialsFile: string | null;
  /** A private key for ssh remotes, and the known_hosts file their host keys are checked against. */
  sshKeyFile: string | null;
  sshKnownHostsFile: string | null;
}

/** How often a push that found the remote unreachable is tried, and the wait before each next try. */
const PUSH_TRIES = 3;
const PUSH_RETRY_MS = [2_000, 5_000];
const GIT_TIMEOUT_MS = 10 * 60 * 1000;

const UNREACHABLE = new RegExp(
  [
    'could not resolve host',
    'connection refused',
    'timed out',
    "couldn't connect",
    'connection reset',
    'unable to access',
    'the remote end hung up',
  ].join('|'),
  'i',
);

/** What git's words mean for a push that failed, and whether trying again can help. Pure, for tests. */
export function pushFailureOf(stderr: string): { failure: DeliveryFailure; retry: boolean } {
  if (/authentication failed|\b401\b|\b403\b|permission denied|could not read (username|password)/i.test(stderr))
    return { failure: 'authentication_failed', retry: false };
  if (/\[rejected\]|non-fast-forward|fetch first|\(stale info\)/i.test(stderr))
    return { failure: 'non_fast_forward', retry: false };
  if (UNREACHABLE.test(stderr)) return { failure: 'unreachable', retry: true };
  return { failure: 'push_failed', retry: false };
}

/** git's last words, for the reason: the URL has no credentials (the policy refuses them), and git prints no secret. */
const lastLines = (text: string): string => text.split('\n').slice(-4).join('\n').slice(-1000);

/** The result as stored: the bundle of `ref` (refs/heads/agent/<id>) from the base, at `commitSha`. */
export interface StoredBundle {
  data: Uint8Array;
  ref: string;
  commitSha: string;
}

export interface ResultRepositoryRequest {
  policy: RepositoryPolicy;
  /** The host's repository cache (its mirror holds the base), or null: the base is fetched into a temporary one. */
  cache: RepositoryCache | null;
  /** The task's repository and branch (where the base commit comes from) and whether a local path may be used. */
  origin: { repository: string; branch: string; allowLocal: boolean };
  bundle: StoredBundle;
  signal: AbortSignal;
}

type Failed = { failure: DeliveryFailure; reason: string };

/** git on the worker's own repository: nothing of the machine's or the user's configuration. */
const ownGit = (home: string): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: home,
  LANG: 'C',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
});
const isFailed = (value: unknown): value is Failed =>
  typeof value === 'object' && value !== null && 'failure' in value && 'reason' in value;

const runOptions = (env: Record<string, string>, signal: AbortSignal): ProgramOptions => ({
  env,
  timeoutMs: GIT_TIMEOUT_MS,
  maxBuffer: 1024 * 1024,
  signal,
});

/**
 * Runs `use` in a temporary bare repository of the task's branch (a hard-linked copy of the host's mirror, fetched
 * first so the base is there) into which the bundle's branch was fetched as `as`, every object checked: a bundle that
 * fetches there descends from the task's branch. `home` is the folder git may use as HOME. Removed afterwards.
 */
async function inResultRepository<T>(
  request: ResultRepositoryRequest,
  as: string,
  use: (repo: string, home: string) => Promise<T | Failed>,
): Promise<T | Failed> {
  let origin;
  try {
    origin = await admitRepository(request.policy, request.origin.repository, {
      allowLocal: request.origin.allowLocal,
    });
  } catch (error) {
    if (error instanceof RepositoryRefused) return { failure: 'remote_refused', reason: error.message };
    throw error;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'result-'));
  try {
    const forOrigin = await hardenedGit(request.policy, origin, dir);
    if (!forOrigin)
      return { failure: 'base_missing', reason: `no address of ${request.origin.repository} may be reached` };
    const run = runOptions(forOrigin.env, request.signal);
    const originUrl = origin.kind === 'local' ? origin.path : origin.url;
    const repo = path.join(dir, 'result.git');
    try {
      const cache = request.cache ?? new RepositoryCache(path.join(dir, 'cache'));
      const mirror = await cache.refresh(originUrl, request.origin.branch, { config: forOrigin.config, options: run });
      await cache.bareCopy(mirror, request.origin.branch, repo, run);
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      const words = lastLines(stderrOf(error));
      return { failure: 'base_missing', reason: `the base could not be fetched from the task's repository: ${words}` };
    }
    const file = path.join(dir, 'result.bundle');
    await writeFile(file, request.bundle.data);
    const local = ['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.allow=never', '-c', 'protocol.file.allow=always'];
    const fetch = ['-c', 'fetch.fsckObjects=true', '-C', repo, 'fetch', '--quiet', '--', file];
    try {
      await runProgram('git', [...local, ...fetch, `+${request.bundle.ref}:${as}`], run);
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      const words = lastLines(stderrOf(error));
      return { failure: 'base_missing', reason: `the bundle does not apply to the task's branch: ${words}` };
    }
    return await use(repo, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A bundle received from a peer, checked and renamed: its one branch at `commitSha`, applying on the task's branch
 * (so it descends from it), bundled again as `as` from the same base. Every failure is a reason, never an exception.
 */
export async function rebundleResult(
  request: ResultRepositoryRequest & { as: string },
): Promise<{ data: Buffer; prerequisites: string[] } | Failed> {
  let received;
  try {
    received = resultBundleOf(`bundle\n${Buffer.from(request.bundle.data).toString('base64')}`, {
      branch: request.bundle.ref.replace(/^refs\/heads\//, ''),
      commitSha: request.bundle.commitSha,
    });
  } catch (error) {
    if (error instanceof InvalidBundle) return { failure: 'no_bundle', reason: error.message };
    throw error;
  }
  if (received.kind !== 'bundle') return { failure: 'no_bundle', reason: 'no bundle was received' };
  const { prerequisites } = received.header;
  return await inResultRepository(request, request.as, async (repo, home) => {
    const out = path.join(home, 'rebundled.bundle');
    const exclusions = prerequisites.map((commit) => `^${commit}`);
    const create = ['-c', 'core.hooksPath=/dev/null', '-C', repo, 'bundle', 'create', '--quiet', out, request.as];
    try {
      await runProgram('git', [...create, ...exclusions], runOptions(ownGit(home), request.signal));
      const data = await readFile(out);
      const header = readBundleHeader(data);
      if (header.refs.size !== 1 || header.refs.get(request.as) !== request.bundle.commitSha)
        return { failure: 'no_bundle', reason: `the bundle made again does not hold ${request.as}` };
      return { data, prerequisites: header.prerequisites };
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      return { failure: 'no_bundle', reason: `the bundle could not be made again: ${lastLines(stderrOf(error))}` };
    }
  });
}

export interface PushRequest extends ResultRepositoryRequest {
  target: { remote: string; branch: string };
  credentials: DeliveryCredentials;
}

/**
 * Pushes a result branch from its stored bundle, on the worker: the bundle fetched into a repository of the task's
 * branch (inResultRepository), then a push of its one branch with the operator's credentials. Never forced: a branch
 * that moved on is reported, and pushing the same commit again changes nothing. Every failure is an outcome, never an
 * exception.
 */
export async function pushResult(request: PushRequest): Promise<DeliveryOutcome> {
  const { target, bundle } = request;
  const where = { remote: target.remote, branch: target.branch, commit: bundle.commitSha };
  const failed = ({ failure, reason }: Failed): DeliveryOutcome => ({ pushed: false, ...where, failure, reason });
  let remote;
  try {
    remote = await admitRepository(request.policy, target.remote, { allowLocal: request.origin.allowLocal });
  } catch (error) {
    if (error instanceof RepositoryRefused) return failed({ failure: 'remote_refused', reason: error.message });
    throw error;
  }
  const outcome = await inResultRepository(request, bundle.ref, async (repo, home) => {
    const forRemote = await hardenedGit(request.policy, remote, home);
    if (!forRemote)
      return { failure: 'unreachable', reason: `no address of ${target.remote} may be reached from this instance` };
    const credentials = request.credentials;
    const config = [
      ...forRemote.config,
      ...(credentials.credentialsFile ? ['-c', `credential.helper=store --file=${credentials.credentialsFile}`] : []),
    ];
    const env = { ...forRemote.env };
    if (credentials.sshKeyFile)
      env.GIT_SSH_COMMAND =
        `ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i '${credentials.sshKeyFile}'` +
        (credentials.sshKnownHostsFile
          ? ` -o StrictHostKeyChecking=yes -o UserKnownHostsFile='${credentials.sshKnownHostsFile}'`
          : '');
    const remoteUrl = remote.kind === 'local' ? remote.path : remote.url;
    const push = [
      ...config,
      '-C',
      repo,
      'push',
      '--quiet',
      '--',
      remoteUrl,
      `${bundle.ref}:refs/heads/${target.branch}`,
    ];
    for (let tries = 1; ; tries++) {
      try {
        await runProgram('git', push, runOptions(env, request.signal));
        return { pushed: true as const };
      } catch (error) {
        if (request.signal.aborted) throw request.signal.reason;
        const words = stderrOf(error);
        const { failure, retry } = pushFailureOf(words);
        if (!retry || tries >= PUSH_TRIES) return { failure, reason: `the push was refused: ${lastLines(words)}` };
        await new Promise((resolve) => setTimeout(resolve, PUSH_RETRY_MS[tries - 1] ?? 5_000));
      }
    }
  });
  return isFailed(outcome) ? failed(outcome) : { pushed: true, ...where };
}
