import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runProgram, type ProgramOptions } from '../platform/program-runner';
import { admitRepository, RepositoryRefused, type RepositoryPolicy } from '../platform/repository-policy';
import type { DeliveryFailure, DeliveryOutcome } from '../shared/vocabulary';
import { RepositoryCache } from './repository-cache';
import { hardenedGit } from './repository-clone';

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

const stderrOf = (error: unknown): string => (error as { stderr?: string }).stderr?.trim() || String(error);
/** git's last words, for the reason: the URL has no credentials (the policy refuses them), and git prints no secret. */
const lastLines = (text: string): string => text.split('\n').slice(-4).join('\n').slice(-1000);

export interface PushRequest {
  policy: RepositoryPolicy;
  /** The host's repository cache (its mirror holds the base), or null: the base is fetched into a temporary one. */
  cache: RepositoryCache | null;
  /** The task's repository and branch (where the base commit comes from) and whether a local path may be used. */
  origin: { repository: string; branch: string; allowLocal: boolean };
  target: { remote: string; branch: string };
  /** The result as stored: the bundle of `ref` (refs/heads/agent/<id>) from the base, at `commitSha`. */
  bundle: { data: Uint8Array; ref: string; commitSha: string };
  credentials: DeliveryCredentials;
  signal: AbortSignal;
}

/**
 * Pushes a result branch from its stored bundle, on the worker: a bare repository of the task's branch (a hard-linked
 * copy of the host's mirror, fetched first so the base is there), the bundle fetched into it with every object
 * checked, then a push of its one branch with the operator's credentials. Never forced: a branch that moved on is
 * reported, and pushing the same commit again changes nothing. Every failure is an outcome, never an exception.
 */
export async function pushResult(request: PushRequest): Promise<DeliveryOutcome> {
  const { target, bundle } = request;
  const where = { remote: target.remote, branch: target.branch, commit: bundle.commitSha };
  const failed = (failure: DeliveryFailure, reason: string): DeliveryOutcome => ({
    pushed: false,
    ...where,
    failure,
    reason,
  });
  const { allowLocal } = request.origin;
  let remote;
  let origin;
  try {
    remote = await admitRepository(request.policy, target.remote, { allowLocal });
    origin = await admitRepository(request.policy, request.origin.repository, { allowLocal });
  } catch (error) {
    if (error instanceof RepositoryRefused) return failed('remote_refused', error.message);
    throw error;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'delivery-'));
  try {
    const [forOrigin, forRemote] = await Promise.all([
      hardenedGit(request.policy, origin, dir),
      hardenedGit(request.policy, remote, dir),
    ]);
    if (!forRemote) return failed('unreachable', `no address of ${target.remote} may be reached from this instance`);
    if (!forOrigin) return failed('base_missing', `no address of ${request.origin.repository} may be reached`);
    const run = (env: Record<string, string>): ProgramOptions => ({
      env,
      timeoutMs: GIT_TIMEOUT_MS,
      maxBuffer: 1024 * 1024,
      signal: request.signal,
    });
    const originUrl = origin.kind === 'local' ? origin.path : origin.url;
    const repo = path.join(dir, 'result.git');
    try {
      const cache = request.cache ?? new RepositoryCache(path.join(dir, 'cache'));
      const git = { config: forOrigin.config, options: run(forOrigin.env) };
      const mirror = await cache.refresh(originUrl, request.origin.branch, git);
      await cache.bareCopy(mirror, request.origin.branch, repo, run(forOrigin.env));
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      return failed(
        'base_missing',
        `the base could not be fetched from the task's repository: ${lastLines(stderrOf(error))}`,
      );
    }
    const file = path.join(dir, 'result.bundle');
    await writeFile(file, bundle.data);
    const local = ['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.allow=never', '-c', 'protocol.file.allow=always'];
    try {
      await runProgram(
        'git',
        [
          ...local,
          '-c',
          'fetch.fsckObjects=true',
          '-C',
          repo,
          'fetch',
          '--quiet',
          '--',
          file,
          `+${bundle.ref}:${bundle.ref}`,
        ],
        run(forOrigin.env),
      );
    } catch (error) {
      if (request.signal.aborted) throw request.signal.reason;
      return failed('base_missing', `the bundle does not apply to the task's branch: ${lastLines(stderrOf(error))}`);
    }
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
        await runProgram('git', push, run(env));
        return { pushed: true, ...where };
      } catch (error) {
        if (request.signal.aborted) throw request.signal.reason;
        const words = stderrOf(error);
        const { failure, retry } = pushFailureOf(words);
        if (!retry || tries >= PUSH_TRIES) return failed(failure, `the push was refused: ${lastLines(words)}`);
        await new Promise((resolve) => setTimeout(resolve, PUSH_RETRY_MS[tries - 1] ?? 5_000));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
