import { chmod, chown, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { SandboxCheckResult } from '../workflows/sandbox-check/contract';
import { runContainerToCompletion } from '../sandbox-runtime/containers';
import { failedChecks, parseProbeOutput, PROBE_SCRIPT, WORKSPACE_MARKER } from '../sandbox-runtime/probe';
import { hardenedContainerSpec, SANDBOX_UID, type SandboxRuntime } from '../sandbox-runtime/container-spec';

export interface SandboxProbeDeps {
  docker: Docker;
  sandboxImage: string;
  sandboxRuntime: SandboxRuntime;
  /** Per-run workspaces are created below this host directory. */
  workspacesDir: string;
  /** The owning instance's label value (see instanceLabel). */
  instance: string;
}

const PROBE_TIMEOUT_MS = 60_000;

/** Gives the sandbox user its workspace; without root (chown fails) the directory is opened up instead. */
async function prepareWorkspace(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, SANDBOX_UID, SANDBOX_UID).catch(() => chmod(dir, 0o777));
}

export function createSandboxProbeActivities(deps: SandboxProbeDeps) {
  return {
    /**
     * Runs the confinement probe in a hardened container and judges it. Idempotent: the container is
     * named after the workflow, so a retry replaces the previous attempt's container and workspace.
     */
    async runSandboxProbe(input: { checkId: string; workflowId: string }): Promise<SandboxCheckResult> {
      const workspace = path.join(deps.workspacesDir, input.workflowId);
      await prepareWorkspace(workspace);
      try {
        const run = await runContainerToCompletion(
          deps.docker,
          hardenedContainerSpec({
            name: input.workflowId,
            image: deps.sandboxImage,
            runtime: deps.sandboxRuntime,
            command: ['sh', '-c', PROBE_SCRIPT],
            workflowId: input.workflowId,
            instance: deps.instance,
            workspaceHostPath: workspace,
            limits: { memoryMb: 128, cpus: 0.5, pids: 64 },
          }),
          { timeoutMs: PROBE_TIMEOUT_MS, maxOutputBytes: 64 * 1024, signal: Context.current().cancellationSignal },
        );
        const findings = parseProbeOutput(run.stdout);
        const markerSeenOnHost =
          (await readFile(path.join(workspace, WORKSPACE_MARKER), 'utf8').catch(() => '')).trim() === 'ok';
        const failed = findings ? failedChecks(findings) : ['probe output unreadable'];
        if (findings && !markerSeenOnHost) failed.push('workspace not shared with the host');
        if (run.exitCode !== 0)
          failed.push(`probe exited with ${run.exitCode}${run.oomKilled ? ' (out of memory)' : ''}`);
        return {
          checkId: input.checkId,
          state: failed.length === 0 ? 'passed' : 'failed',
          exitCode: run.exitCode,
          findings,
          ...(failed.length > 0
            ? { error: `sandbox check failed: ${failed.join(', ')}; stderr: ${run.stderr.slice(0, 500)}` }
            : {}),
        };
      } finally {
        await rm(workspace, { recursive: true, force: true });
      }
    },
  };
}
