import { ApplicationFailure } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { WorkerMetrics } from '../../platform/metrics';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import { isNotFound, removeContainerIfPresent } from '../../sandbox-runtime/containers';
import { forgetOomFile } from '../../sandbox-runtime/oom';
import { SANDBOX_FAILED, sandboxRemoved } from './failures';

/**
 * Containers this process began to remove, remembered a while: a tool call that finds its sandbox gone then knows why.
 */
const removalsStarted = new Set<string>();
const REMOVAL_REMEMBERED_MS = 60_000;

/** A sandbox made again is not the one removed. */
export function forgetRemoval(containerName: string): void {
  removalsStarted.delete(containerName);
}

/**
 * Throws unless the sandbox is running: removed (by a kill), frozen (by the quota watchdog) and stopped (by the agent
 * or the kernel) each say so; an engine that does not answer asks for a retry.
 */
export async function ensureRunning(docker: Docker, containerName: string): Promise<void> {
  const state = await docker
    .getContainer(containerName)
    .inspect()
    .then((info) => info.State)
    .catch((error: unknown) => {
      if (isNotFound(error)) return null;
      // An engine that does not answer (restarting) is no verdict on the sandbox: the attempt is retried.
      throw ApplicationFailure.retryable(
        `the Docker engine did not answer: ${error instanceof Error ? error.message : String(error)}`,
        'DockerUnavailable',
      );
    });
  // Being removed: a kill (or a teardown) stopped it, not the agent. The engine may show it exited a
  // moment before it shows it removing: a removal this host started says the same.
  if (!state || state.Status === 'removing' || removalsStarted.has(containerName)) throw sandboxRemoved(containerName);
  // An operator's pause is undone before the next tool runs: only the quota watchdog leaves a sandbox paused here.
  if (state.Paused)
    throw ApplicationFailure.nonRetryable(
      'the workspace went past its disk quota and the sandbox was frozen: the run was stopped',
      SANDBOX_FAILED,
    );
  if (!state.Running) {
    const reason = state.OOMKilled ? 'it ran out of memory' : `it exited with code ${state.ExitCode}`;
    throw ApplicationFailure.nonRetryable(`the sandbox stopped unexpectedly: ${reason}`, SANDBOX_FAILED);
  }
}

/** Waits (up to 2 s) until the container has stopped, if it is stopping. */
export async function settled(docker: Docker, containerName: string): Promise<void> {
  await docker
    .getContainer(containerName)
    .wait({ condition: 'not-running', abortSignal: AbortSignal.timeout(2_000) })
    .catch(() => undefined); // still running after 2 s (only the process was killed), or already gone
}

/**
 * Removes the agent's container (and forgets what was cached of it); after a kill, whichever removal (the kill's at
 * once, or the teardown) removed it measures the kill, once.
 */
export async function removeAgentContainer(
  deps: { docker: Docker; metrics: WorkerMetrics },
  input: { agentId: string; killRequestedAt?: string },
): Promise<void> {
  const containerName = containerNameFor(input.agentId);
  removalsStarted.add(containerName);
  setTimeout(() => removalsStarted.delete(containerName), REMOVAL_REMEMBERED_MS).unref();
  forgetOomFile(containerName);
  const removed = await removeContainerIfPresent(deps.docker, containerName);
  if (removed && input.killRequestedAt)
    deps.metrics.killLatency.observe((Date.now() - new Date(input.killRequestedAt).getTime()) / 1000);
}
