import { ApplicationFailure, Context } from '@temporalio/activity';
import { storeBundleStatement, storeResult } from '../../domain/agents/agent-events';
import { containerNameFor, resultBranchFor } from '../../sandbox-runtime/agent-containers';
import { endLeftoverCommands, execInContainer } from '../../sandbox-runtime/containers';
import {
  InvalidBundle,
  RESULT_BUNDLE_MAX_BYTES,
  RESULT_BUNDLE_SCRIPT,
  resultBundleOf,
} from '../../sandbox-runtime/git-bundle';
import type { ResultBundleStatus } from '../../shared/vocabulary';
import type { AgentResultSummary } from '../../workflows/agent-run/contract';
import { whileHeartbeating } from '../heartbeat';
import type { AgentSandboxDeps } from './deps';
import { quotaExceeded, SANDBOX_FAILED } from './failures';
import { ensureRunning } from './liveness';

type CollectInput = { agentId: string; baseSha: string; summary: string };

// Runs inside the sandbox: the agent controls this repository (hooks, config), so git never runs on the host here.
const COMMIT_SCRIPT = [
  'set -e',
  "export GIT_AUTHOR_NAME='Claude agent' GIT_AUTHOR_EMAIL=agent@localhost " +
    "GIT_COMMITTER_NAME='Claude agent' GIT_COMMITTER_EMAIL=agent@localhost",
  'git checkout -q -B "$1"',
  'git add -A',
  'if ! git diff --cached --quiet; then git -c core.hooksPath=/dev/null commit -q --no-verify -m "$2"; fi',
  'git rev-parse HEAD',
].join('\n');

/** The end of a run: the agent's changes committed on its result branch, and the result stored. */
export function createCollectActivities(deps: AgentSandboxDeps) {
  const { prisma, docker } = deps;

  /**
   * Stores the result branch as a git bundle from the base, made in the sandbox and checked here (one reference, at
   * the commit collected). A bundle that cannot be made or is too large never fails the run: the status says so.
   */
  async function storeBundle(
    result: { agentId: string; containerName: string; baseSha: string; branch: string; commitSha: string },
    signal: AbortSignal,
  ): Promise<Exclude<ResultBundleStatus, 'pruned'>> {
    const { log } = Context.current();
    const script = ['sh', '-c', RESULT_BUNDLE_SCRIPT, 'bundle', result.baseSha, result.branch];
    const printed = await execInContainer(docker, result.containerName, [...script, String(RESULT_BUNDLE_MAX_BYTES)], {
      timeoutMs: 300_000,
      maxOutputBytes: Math.ceil((RESULT_BUNDLE_MAX_BYTES * 4) / 3) + 1024,
      signal,
    });
    if (printed.exitCode !== 0 || printed.outputTruncated) {
      log.warn('the result bundle could not be made', { agentId: result.agentId, git: printed.stderr.slice(-2000) });
      return 'unavailable';
    }
    let bundle: ReturnType<typeof resultBundleOf>;
    try {
      bundle = resultBundleOf(printed.stdout, result);
    } catch (error) {
      if (!(error instanceof InvalidBundle)) throw error;
      log.warn('the result bundle was refused', { agentId: result.agentId, reason: error.message });
      return 'unavailable';
    }
    if (bundle.kind === 'too_large') return 'too_large';
    const { commitSha } = result;
    await storeBundleStatement(prisma, result.agentId, {
      commitSha,
      prerequisites: bundle.header.prerequisites,
      data: bundle.data,
    });
    return 'stored';
  }

  /** Commits, reads the diff and stores the result with the last test run's outcome; `signal` stops it. */
  async function collect(input: CollectInput, signal: AbortSignal): Promise<AgentResultSummary> {
    const containerName = containerNameFor(input.agentId);
    await ensureRunning(docker, containerName);
    // A worker that died while collecting left its git running in the sandbox, holding the index lock.
    if (Context.current().info.attempt > 1) await endLeftoverCommands(docker, containerName);
    const branch = resultBranchFor(input.agentId);
    const committed = await execInContainer(
      docker,
      containerName,
      ['sh', '-c', COMMIT_SCRIPT, 'collect', branch, input.summary || 'Agent changes'],
      { timeoutMs: 120_000, maxOutputBytes: 64 * 1024, signal },
    );
    if (committed.exitCode !== 0)
      throw ApplicationFailure.retryable(`committing the result failed: ${committed.stderr.trim()}`, SANDBOX_FAILED);
    const commitSha = committed.stdout.trim().split('\n').at(-1) ?? null;
    const diff = await execInContainer(docker, containerName, ['git', 'diff', input.baseSha, 'HEAD'], {
      timeoutMs: 120_000,
      maxOutputBytes: 1024 * 1024,
      signal,
    });
    const stat = await execInContainer(docker, containerName, ['git', 'diff', '--name-only', input.baseSha, 'HEAD'], {
      timeoutMs: 60_000,
      maxOutputBytes: 256 * 1024,
      signal,
    });
    const lastTestRun = await prisma.toolCall.findFirst({
      where: { agentId: input.agentId, name: 'run_tests', status: 'finished' },
      orderBy: { finishedAt: 'desc' },
    });
    const changed = commitSha === input.baseSha ? null : commitSha;
    const bundleStatus = changed
      ? await storeBundle(
          { agentId: input.agentId, containerName, baseSha: input.baseSha, branch, commitSha: changed },
          signal,
        )
      : null;
    const data = {
      branch,
      commitSha: changed,
      diff: diff.stdout,
      testOutput: lastTestRun?.output ?? null,
      testExitCode: lastTestRun?.exitCode ?? null,
      summary: input.summary,
      bundleStatus,
    };
    const filesChanged = stat.stdout.split('\n').filter(Boolean).length;
    // The last model call is over: the run's estimated cost is final.
    const { costUsd } = await prisma.agent.findUniqueOrThrow({
      where: { id: input.agentId },
      select: { costUsd: true },
    });
    await storeResult(prisma, input.agentId, data, {
      type: 'result',
      branch,
      commitSha: changed,
      filesChanged,
      testExitCode: data.testExitCode,
      costUsd,
    });
    return { branch, commitSha: changed, filesChanged, testExitCode: data.testExitCode };
  }

  return {
    /** Commits the agent's changes on its result branch (inside the sandbox) and stores the diff and test outcome. */
    async collectResult(input: CollectInput): Promise<AgentResultSummary> {
      const breached = new AbortController(); // a sandbox the quota watchdog freezes runs nothing more
      const stopWatching = deps.quotaWatch?.whenBreached(input.agentId, () => breached.abort());
      try {
        return await whileHeartbeating(() =>
          collect(input, AbortSignal.any([Context.current().cancellationSignal, breached.signal])),
        );
      } catch (error) {
        const breach = deps.quotaWatch?.breachOf(input.agentId);
        if (breach) throw quotaExceeded(breach.quotaBytes / (1024 * 1024));
        throw error;
      } finally {
        stopWatching?.();
      }
    },
  };
}
