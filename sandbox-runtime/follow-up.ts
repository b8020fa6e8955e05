import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runProgram } from '../platform/program-runner';
import { resultBranchFor } from './agent-containers';
import { CloneFailed, stderrOf } from './repository-clone';

/** A finished agent's stored result bundle, as a follow-up starts from it. */
export interface ParentResult {
  agentId: string;
  commitSha: string;
  /** The bundle's base: the commit the parent started from, which the task's branch holds. */
  prerequisites: string[];
  data: Uint8Array;
}

/**
 * Puts a follow-up's workspace (a fresh clone of the task's branch, before the sandbox runs anything) on its parent's
 * result: the bundle, checked when it was stored, is fetched with every object checked and its branch checked out.
 * Returns the commit the follow-up's own result is measured from: the parent's base, so the follow-up's result bundle
 * applies to the task's branch as the parent's did. Idempotent, for a retried launch.
 */
export async function checkOutParentResult(
  dir: string,
  parent: ParentResult,
  signal: AbortSignal,
): Promise<{ baseSha: string | null }> {
  const branch = resultBranchFor(parent.agentId);
  const ref = `refs/heads/${branch}`;
  const temp = await mkdtemp(path.join(os.tmpdir(), 'follow-up-'));
  const file = path.join(temp, 'parent.bundle');
  // The workspace belongs to the sandbox's user once a launch got that far: git must not refuse it as foreign.
  const git = ['-c', 'core.hooksPath=/dev/null', '-c', 'safe.directory=*', '-C', dir];
  const run = { timeoutMs: 5 * 60_000, maxBuffer: 1024 * 1024, signal };
  try {
    await writeFile(file, parent.data);
    await runProgram(
      'git',
      [...git, '-c', 'fetch.fsckObjects=true', 'fetch', '--quiet', '--update-head-ok', '--', file, `+${ref}:${ref}`],
      run,
    );
    await runProgram('git', [...git, 'checkout', '--quiet', '--force', branch], run);
    const head = (await runProgram('git', [...git, 'rev-parse', 'HEAD'], run)).stdout.trim();
    if (head !== parent.commitSha) throw new CloneFailed(`the result of ${parent.agentId} checked out as ${head}`);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof CloneFailed) throw error;
    throw new CloneFailed(
      `the result of ${parent.agentId} does not apply to the task's branch (was it rewritten?): ` +
        stderrOf(error).trim().split('\n').slice(-3).join(' '),
    );
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return { baseSha: parent.prerequisites[0] ?? null };
}
