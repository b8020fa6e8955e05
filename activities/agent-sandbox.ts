import { chown, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { WorkerMetrics } from '../platform/metrics';
import { runProgram } from '../platform/program-runner';
import type { PrismaClient } from '../prisma/client';
import type { RepositoryPolicy } from '../platform/repository-policy';
import { TERMINAL_STATES, type AgentType } from '../shared/vocabulary';
import { type AgentContext, type AgentOptions } from '../shared/agent-schemas';
import { TOOL_OUTPUT_LIMIT_BYTES, toolCommand, ToolInputError } from '../sandbox-runtime/agent-tools';
import { cancelledByShutdown, stopIfCancelled, whileHeartbeating, WORKER_SHUTDOWN_FAILURE } from './heartbeat';
import type { InFlightModelCalls } from '../model-client/calls-in-flight';
import {
  AGENT_LABEL,
  containerNameFor,
  DEADLINE_LABEL,
  resultBranchFor,
  WORKSPACE_LABEL,
} from '../sandbox-runtime/agent-containers';
import { CloneFailed, cloneRepository } from '../sandbox-runtime/repository-clone';
import {
  endLeftoverCommands,
  execInContainer,
  isNotFound,
  removeContainerIfPresent,
  runDetachedInContainer,
  type DetachedOutcome,
  type ExecResult,
} from '../sandbox-runtime/containers';
import {
  clampLimits,
  hardenedContainerSpec,
  SANDBOX_UID,
  type SandboxRuntime,
} from '../sandbox-runtime/container-spec';
import type { QuotaWatchdog } from '../sandbox-runtime/quota-watchdog';
import { dropDanglingLink, type WarmPool } from '../sandbox-runtime/warm-pool';
import { prepareWorkspace, quotaReached, releaseWorkspace, type QuotaMode } from '../sandbox-runtime/workspace';
import { appendEventStatements, storeResult } from '../domain/agents/agent-events';
import { AGENT_RUN_FAILURES } from '../workflows/agent-run/contract';

export const SANDBOX_FAILED = AGENT_RUN_FAILURES.sandboxFailed;
/**
 * Marks the failure of an activity whose container was removed under it: by a kill (or a teardown), never by the agent
 * itself.
 */
const SANDBOX_REMOVED = 'sandbox-removed';

/** The failure of an activity a kill stopped (its sandbox removed under it, its model call aborted). */
export const stoppedByKill = (message: string, type: string): ApplicationFailure =>
  ApplicationFailure.create({ message, type, nonRetryable: true, details: [SANDBOX_REMOVED] });

const sandboxRemoved = (containerName: string): ApplicationFailure =>
  stoppedByKill(`the sandbox ${containerName} was removed`, SANDBOX_FAILED);

/**
 * Whether an activity ended because a kill stopped it (its sandbox removed under it): counted as cancelled, not failed.
 */
export const isSandboxRemoved = (error: unknown): boolean =>
  error instanceof ApplicationFailure && error.details?.[0] === SANDBOX_REMOVED;

export interface AgentSandboxDeps {
  metrics: WorkerMetrics;
  prisma: PrismaClient;
  docker: Docker;
  sandboxImage: string;
  sandboxRuntime: SandboxRuntime;
  workspacesDir: string;
  /** The task queue only this host's worker polls; sandbox activities are routed there. */
  hostQueue: string;
  /** The owning instance's label value (see instanceLabel). */
  instance: string;
  /** Agent sandboxes this host runs at once; more spawns wait in state queued. */
  maxConcurrentAgents: number;
  /** Where repositories may be cloned from. */
  repositories: RepositoryPolicy;
  /** How workspace disk quotas are enforced on this host (see activities/workspace.ts). */
  quotaMode: QuotaMode;
  /** The largest workspace quota this instance grants (WORKSPACE_MAX_MB). */
  workspaceMaxMb: number;
  /** Sandboxes started ahead of demand (WARM_POOL_SIZE), or null. */
  warmPool: WarmPool | null;
  /** The model calls in flight in this process: a kill stops its agent's. */
  modelCalls: InFlightModelCalls;
  /** Where quotas are only watched: the watch over every live sandbox of this host (null in loop mode). */
  quotaWatch: QuotaWatchdog | null;
}

export interface LaunchedSandbox {
  hostQueue: string;
  containerName: string;
  baseSha: string;
}

export interface ToolOutcome {
  status: 'finished' | 'unknown';
  isError: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  /** The workspace is full: further writes fail (set from this version on; absent in older histories). */
  quotaReached?: boolean;
}

export interface AgentResultSummary {
  branch: string;
  commitSha: string | null;
  filesChanged: number;
  testExitCode: number | null;
}

/**
 * What the model reads of a command: its exit code and both streams, or for a plain tool (the editor) its answer alone.
 */
function formatOutput(result: ExecResult, plain: boolean): string {
  const timedOut = result.exitCode === 124 ? ' (timed out)' : '';
  const parts = plain
    ? [
        result.exitCode === 0
          ? result.stdout
          : result.stderr || `the tool failed with exit code ${result.exitCode}${timedOut}`,
      ]
    : [
        `exit code ${result.exitCode}${timedOut}`,
        ...(result.stdout ? [result.stdout] : []),
        ...(result.stderr ? [`stderr:\n${result.stderr}`] : []),
      ];
  if (result.outputTruncated) parts.push(`[output truncated to ${TOOL_OUTPUT_LIMIT_BYTES} bytes per stream]`);
  return parts.join('\n');
}

/** Where each live container's memory cgroup counts its OOM kills (found once: a tool call needs no inspect for it). */
const oomFiles = new Map<string, string>();
/**
 * Containers this process began to remove, remembered a while: a tool call that finds its sandbox gone then knows why.
 */
const removalsStarted = new Set<string>();
const REMOVAL_REMEMBERED_MS = 60_000;

/**
 * The OOM kills the container's memory cgroup counted, read on the host through its init process (cgroup v1 or v2);
 * null where the host's /proc does not show it.
 */
async function hostOomKillCount(docker: Docker, containerName: string): Promise<number | null> {
  const read = async (file: string): Promise<number | null> => {
    const count = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'))?.[1];
    return count === undefined ? null : Number(count);
  };
  const known = oomFiles.get(containerName);
  if (known) {
    const count = await read(known).catch(() => undefined);
    if (count !== undefined) return count;
    oomFiles.delete(containerName); // another container of that name since
  }
  try {
    const { Pid } = (await docker.getContainer(containerName).inspect()).State;
    if (!Pid) return null;
    const lines = (await readFile(`/proc/${Pid}/cgroup`, 'utf8')).split('\n');
    const v1 = lines.find((line) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(line));
    const file = v1
      ? path.join('/sys/fs/cgroup/memory', v1.split(':')[2] ?? '', 'memory.oom_control')
      : path.join('/sys/fs/cgroup', lines.find((line) => line.startsWith('0::'))?.slice(3) ?? '', 'memory.events');
    const count = await read(file);
    if (count !== null) oomFiles.set(containerName, file);
    return count;
  } catch {
    return null;
  }
}

/**
 * Whether the container's memory cgroup has killed a process: read on the host (no process started),
 * or from inside the sandbox where the host's view is not available (a worker in a container).
 */
async function oomKillCount(docker: Docker, containerName: string): Promise<number> {
  const onHost = await hostOomKillCount(docker, containerName);
  if (onHost !== null) return onHost;
  const probe = await execInContainer(
    docker,
    containerName,
    [
      'sh',
      '-c',
      'cat /sys/fs/cgroup/memory.events ' +
        '/sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | grep -E ' +
        '"^oom_kill " | head -n 1',
    ],
    { timeoutMs: 10_000, maxOutputBytes: 1024 },
  ).catch(() => null);
  return Number(/oom_kill (\d+)/.exec(probe?.stdout ?? '')?.[1] ?? 0);
}

export function createAgentSandboxActivities(deps: AgentSandboxDeps) {
  const { prisma, docker } = deps;

  /**
   * A call whose outcome cannot be known (its keeper in the sandbox ended without a result): said so to the model and
   * the log.
   */
  async function unknownOutcome(
    agentId: string,
    call: { id: string; turn: number; name: string },
    reason: string,
  ): Promise<ToolOutcome> {
    const key = { agentId_id: { agentId, id: call.id } };
    await prisma.$transaction([
      prisma.toolCall.update({
        where: key,
        data: { status: 'unknown', output: reason, isError: true, finishedAt: new Date() },
      }),
      ...appendEventStatements(prisma, agentId, {
        type: 'tool',
        turn: call.turn + 1,
        toolCallId: call.id,
        tool: call.name,
        status: 'unknown',
        exitCode: null,
        isError: true,
      }),
    ]);
    deps.metrics.toolCalls.inc({ tool: call.name, exit_status: 'unknown' });
    return { status: 'unknown', isError: true, exitCode: null, oomKilled: false };
  }

  async function ensureRunning(containerName: string): Promise<void> {
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
    if (!state || state.Status === 'removing' || removalsStarted.has(containerName))
      throw sandboxRemoved(containerName);
    // Only the quota watchdog pauses a sandbox.
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
  async function settled(containerName: string): Promise<void> {
    await docker
      .getContainer(containerName)
      .wait({ condition: 'not-running', abortSignal: AbortSignal.timeout(2_000) })
      .catch(() => undefined); // still running after 2 s (only the process was killed), or already gone
  }

  /**
   * Removes the agent's container (and forgets what was cached of it); after a kill, whichever removal (the kill's at
   * once, or the teardown) removed it measures the kill, once.
   */
  async function removeAgentContainer(input: { agentId: string; killRequestedAt?: string }): Promise<void> {
    const containerName = containerNameFor(input.agentId);
    removalsStarted.add(containerName);
    setTimeout(() => removalsStarted.delete(containerName), REMOVAL_REMEMBERED_MS).unref();
    oomFiles.delete(containerName);
    const removed = await removeContainerIfPresent(docker, containerName);
    if (removed && input.killRequestedAt)
      deps.metrics.killLatency.observe((Date.now() - new Date(input.killRequestedAt).getTime()) / 1000);
  }

  const quotaExceeded = (quotaMb: number): ApplicationFailure =>
    ApplicationFailure.nonRetryable(
      `the workspace went past its disk quota of ${quotaMb} MB: the run was stopped`,
      SANDBOX_FAILED,
    );

  /** The agent's workspace quota: what its options ask for, within the instance's bound. */
  const quotaOf = (options: AgentOptions): number =>
    Math.min(clampLimits(options.resources).diskMb, deps.workspaceMaxMb);
  const workspaceOf = (agentId: string): string => path.join(deps.workspacesDir, agentId);

  type LaunchInput = {
    agentId: string;
    workspaceId: string;
    context: AgentContext;
    options: AgentOptions;
    deadline: string;
  };

  const containerSpec = (input: LaunchInput, workspace: string, containerName: string) =>
    hardenedContainerSpec({
      name: containerName,
      image: deps.sandboxImage,
      runtime: deps.sandboxRuntime,
      command: ['sleep', 'infinity'],
      workflowId: input.agentId,
      instance: deps.instance,
      workspaceHostPath: workspace,
      limits: { ...input.options.resources, diskMb: quotaOf(input.options) },
      labels: { [AGENT_LABEL]: input.agentId, [WORKSPACE_LABEL]: input.workspaceId, [DEADLINE_LABEL]: input.deadline },
    });

  /**
   * Clones the agent's repository into its workspace (a hub's spawn may clone a local path only if its connection
   * allows it).
   */
  async function checkOut(input: LaunchInput, workspace: string): Promise<{ headSha: string | null }> {
    const agent = await prisma.agent.findUniqueOrThrow({
      where: { id: input.agentId },
      select: { originConnectionId: true },
    });
    const origin = agent.originConnectionId
      ? await prisma.federationConnection.findUnique({ where: { id: agent.originConnectionId } })
      : null;
    const allowLocal = agent.originConnectionId === null || origin?.allowLocalRepositories === true;
    const dir = await realpath(workspace); // the slot itself when the workspace links to a warm one
    const { repository, branch } = input.context;
    const context = Context.current();
    const onGitError = (stderr: string): void => {
      context.log.warn('clone failed', { repository, branch, git: stderr.slice(-2000) });
    };
    const clone = { repository, branch, dir, allowLocal };
    let checkout: { headSha: string | null };
    try {
      checkout = await cloneRepository(deps.repositories, clone, { signal: context.cancellationSignal, onGitError });
    } catch (error) {
      if (error instanceof CloneFailed) throw ApplicationFailure.nonRetryable(error.message, SANDBOX_FAILED);
      throw error;
    }
    await runProgram('chown', ['-R', `${SANDBOX_UID}:${SANDBOX_UID}`, dir]).catch(() =>
      chown(dir, SANDBOX_UID, SANDBOX_UID),
    );
    return checkout;
  }

  /**
   * Commits the agent's changes on its result branch (inside the sandbox) and stores the diff and test outcome;
   * `signal` stops it.
   */
  async function collect(
    input: { agentId: string; baseSha: string; summary: string },
    signal: AbortSignal,
  ): Promise<AgentResultSummary> {
    const containerName = containerNameFor(input.agentId);
    await ensureRunning(containerName);
    // A worker that died while collecting left its git running in the sandbox, holding the index lock.
    if (Context.current().info.attempt > 1) await endLeftoverCommands(docker, containerName);
    const branch = resultBranchFor(input.agentId);
    // Runs inside the sandbox: the agent controls this repository (hooks, config), so git never runs on the host here.
    const script = [
      'set -e',
      "export GIT_AUTHOR_NAME='Claude agent' GIT_AUTHOR_EMAIL=agent@localhost " +
        "GIT_COMMITTER_NAME='Claude agent' GIT_COMMITTER_EMAIL=agent@localhost",
      'git checkout -q -B "$1"',
      'git add -A',
      'if ! git diff --cached --quiet; then git -c core.hooksPath=/dev/null commit -q --no-verify -m "$2"; fi',
      'git rev-parse HEAD',
    ].join('\n');
    const committed = await execInContainer(
      docker,
      containerName,
      ['sh', '-c', script, 'collect', branch, input.summary || 'Agent changes'],
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
    const data = {
      branch,
      commitSha: changed,
      diff: diff.stdout,
      testOutput: lastTestRun?.output ?? null,
      testExitCode: lastTestRun?.exitCode ?? null,
      summary: input.summary,
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

  /** A warm container for this agent when the host has a pool and the agent asks for exactly the pool's limits. */
  async function claimWarm(input: LaunchInput, containerName: string, workspace: string): Promise<boolean> {
    const pool = deps.warmPool;
    if (!pool) return false;
    await dropDanglingLink(workspace); // of a claim a crashed worker did not finish
    const wanted = clampLimits(input.options.resources);
    const fits =
      quotaOf(input.options) === pool.quotaMb &&
      (['memoryMb', 'cpus', 'pids'] as const).every((key) => wanted[key] === pool.limits[key]);
    return fits && (await pool.claim(containerName, workspace)) !== null;
  }

  async function launch(input: LaunchInput): Promise<LaunchedSandbox> {
    const workspace = workspaceOf(input.agentId);
    const containerName = containerNameFor(input.agentId);
    removalsStarted.delete(containerName); // a sandbox made again is not the one removed
    const exists = async (): Promise<boolean> =>
      (await docker
        .getContainer(containerName)
        .inspect()
        .catch(() => null)) !== null;
    const created = Date.now();
    // Where the launch's time goes (logged at debug level): milliseconds since it began, per step.
    const steps: Record<string, number> = {};
    const step = <T>(name: string, value: T): T => {
      steps[name] = Date.now() - created;
      return value;
    };
    let checkout: { headSha: string | null };
    if (!(await exists()) && step('warm', await claimWarm(input, containerName, workspace))) {
      // A warm container: already started, bound to the slot the workspace now links to.
      checkout = step('checkedOut', await checkOut(input, workspace));
    } else {
      // The slot is the admission's: the container is created while the workspace is prepared and the
      // repository cloned (the bind mount is resolved at start, when both are done).
      const creating = exists().then(async (found) => {
        if (found) return;
        await deps.warmPool?.makeRoom();
        step('created', await docker.createContainer(containerSpec(input, workspace, containerName)));
      });
      // Awaited below, after the clone: until then a failure (an engine restarting) must not count as unhandled and end
      // the process.
      creating.catch(() => undefined);
      try {
        await prepareWorkspace(workspace, quotaOf(input.options), deps.quotaMode);
        step('workspace', null);
        stopIfCancelled();
        checkout = step('checkedOut', await checkOut(input, workspace));
      } finally {
        await Promise.allSettled([creating]);
      }
      await creating;
    }
    stopIfCancelled();
    const state = (await docker.getContainer(containerName).inspect()).State;
    if (!state.Running) {
      await docker.getContainer(containerName).start();
      step('started', null);
      deps.metrics.sandboxStart.observe({ runtime: deps.sandboxRuntime }, (Date.now() - created) / 1000);
    }
    // A retried launch reuses its checkout: its commit is then read inside the sandbox.
    const headSha = checkout.headSha ?? (await headInSandbox(containerName));
    await prisma.agent.update({ where: { id: input.agentId }, data: { hostQueue: deps.hostQueue } });
    deps.quotaWatch?.watch(input.agentId, containerName, workspace, quotaOf(input.options));
    Context.current().log.debug('sandbox launched', { agentId: input.agentId, ...steps, done: Date.now() - created });
    return { hostQueue: deps.hostQueue, containerName, baseSha: headSha };
  }

  async function headInSandbox(containerName: string): Promise<string> {
    const head = await execInContainer(docker, containerName, ['git', 'rev-parse', 'HEAD'], {
      timeoutMs: 30_000,
      maxOutputBytes: 1024,
    });
    if (head.exitCode !== 0)
      throw ApplicationFailure.nonRetryable(`the checkout has no commit: ${head.stderr.trim()}`, SANDBOX_FAILED);
    return head.stdout.trim();
  }

  return {
    /**
     * Clones the repository into a per-agent workspace and starts the agent's hardened container on
     * this host, in the slot the admission workflow gave the agent here. Idempotent: the container is named after the
     * agent, so a retry finds it
     * instead of starting a second one. Heartbeats, and stops between steps on a kill. Returns this
     * host's task queue for the sandbox activities that follow.
     */
    async launchSandbox(input: LaunchInput): Promise<LaunchedSandbox> {
      return await whileHeartbeating(() => launch(input));
    },
    /**
     * Runs one tool call inside the sandbox, at most once, detached: the call runs in the sandbox
     * whatever happens to this worker, and an attempt after a deploy or a crash re-attaches to it (the
     * sandbox itself claims the call, see TOOL_RUNNER) and reports its real outcome. Only a sandbox
     * that is gone leaves an outcome unknown.
     */
    async runTool(input: { agentId: string; agentType: AgentType; toolCallId: string }): Promise<ToolOutcome> {
      // Tool call ids come from the model: unique within one agent's conversation, not across agents.
      const key = { agentId_id: { agentId: input.agentId, id: input.toolCallId } };
      const agent = await prisma.agent.findUniqueOrThrow({ where: { id: input.agentId }, select: { options: true } });
      const options = agent.options as AgentOptions;
      const quotaMb = quotaOf(options);
      // A sandbox the quota watchdog froze runs nothing more.
      if (deps.quotaWatch?.breachOf(input.agentId)) throw quotaExceeded(quotaMb);
      const claimed = await prisma.toolCall.updateMany({
        where: { agentId: input.agentId, id: input.toolCallId, status: 'pending' },
        data: { status: 'started', startedAt: new Date() },
      });
      const call = await prisma.toolCall.findUniqueOrThrow({ where: key });
      if (call.status === 'finished')
        return { status: 'finished', isError: call.isError, exitCode: call.exitCode, oomKilled: false };
      if (call.status !== 'started') return { status: 'unknown', isError: true, exitCode: null, oomKilled: false };
      await prisma.agent.update({ where: { id: input.agentId }, data: { lastTool: call.name } });
      const containerName = containerNameFor(input.agentId);
      const finish = async (
        output: string,
        isError: boolean,
        exitCode: number | null,
        oomKilled = false,
      ): Promise<ToolOutcome> => {
        await prisma.$transaction([
          prisma.toolCall.update({
            where: key,
            data: { status: 'finished', output, isError, exitCode, finishedAt: new Date() },
          }),
          ...appendEventStatements(prisma, input.agentId, {
            type: 'tool',
            turn: call.turn + 1,
            toolCallId: call.id,
            tool: call.name,
            status: 'finished',
            exitCode,
            isError,
          }),
        ]);
        deps.metrics.toolCalls.inc({
          tool: call.name,
          exit_status: exitCode === null ? 'error' : exitCode === 0 ? '0' : 'nonzero',
        });
        return { status: 'finished', isError, exitCode, oomKilled };
      };

      let command;
      try {
        command = toolCommand(input.agentType, call.name, call.input, options.commandTimeout);
      } catch (error) {
        if (error instanceof ToolInputError) return finish(error.message, true, null);
        throw error;
      }
      await ensureRunning(containerName).catch(async (error: unknown) => {
        // Nothing ran: a call this attempt claimed goes back to pending (the run's end then says it was never run).
        if (claimed.count === 1)
          await prisma.toolCall.updateMany({
            where: { agentId: input.agentId, id: input.toolCallId, status: 'started' },
            data: { status: 'pending', startedAt: null },
          });
        throw error;
      });
      const ooms = await oomKillCount(docker, containerName);
      const workspace = workspaceOf(input.agentId);
      // Stops waiting on a kill or a worker shutdown, and (where the quota is only watched) when the workspace goes
      // past it.
      const stop = new AbortController();
      const cancellation = Context.current().cancellationSignal;
      const onCancel = (): void => stop.abort();
      cancellation.addEventListener('abort', onCancel, { once: true });
      const quota = { exceeded: false }; // set when the watchdog freezes the sandbox
      const stopWatching = deps.quotaWatch?.whenBreached(input.agentId, () => {
        quota.exceeded = true;
        stop.abort();
      });
      const heartbeat = setInterval(() => Context.current().heartbeat(), 5_000);
      let result: DetachedOutcome;
      try {
        result = await runDetachedInContainer(
          docker,
          containerName,
          {
            id: call.id,
            command: command.command,
            timeoutSeconds: command.timeoutSeconds,
            maxOutputBytes: TOOL_OUTPUT_LIMIT_BYTES,
            ...(command.stdin ? { stdin: command.stdin } : {}),
          },
          // A worker that shuts down leaves the call running for the next one; a kill or a full workspace ends it.
          // Under gVisor a sandbox that runs out of memory ends as a whole, and an exec into it can hang: it is
          // watched.
          {
            signal: stop.signal,
            killOnAbort: () => !cancelledByShutdown(),
            watchContainer: deps.sandboxRuntime === 'runsc',
          },
        );
      } catch (error) {
        if (quota.exceeded || (deps.quotaMode === 'watchdog' && (await quotaReached(workspace, 'watchdog', quotaMb)))) {
          throw quotaExceeded(quotaMb);
        }
        if (cancelledByShutdown())
          throw ApplicationFailure.retryable(
            `the worker shut down while ${call.name} ran; the call goes on and is re-attached`,
            WORKER_SHUTDOWN_FAILURE,
          );
        // A sandbox that stopped or went (a kill removes it at once) is the verdict, not how the exec noticed.
        if (!Context.current().cancellationSignal.aborted) await ensureRunning(containerName);
        throw error;
      } finally {
        clearInterval(heartbeat);
        stopWatching?.();
        cancellation.removeEventListener('abort', onCancel);
      }
      // A kill (or the deadline) ended the call: the run's end marks it cancelled, never finished with the kill's exit
      // code.
      if (cancellation.aborted && !cancelledByShutdown())
        throw new CancelledFailure(`${call.name} was stopped: the run was cancelled`);
      if ('lost' in result) {
        await ensureRunning(containerName); // a sandbox that went is the verdict
        return await unknownOutcome(input.agentId, call, result.lost);
      }
      // Killed by SIGKILL: the container itself may be going (a kill removes it), a moment after its processes.
      if (result.exitCode === 137) await settled(containerName);
      await ensureRunning(containerName);
      const oomKilled = (await oomKillCount(docker, containerName)) > ooms;
      const full = await quotaReached(workspace, deps.quotaMode, quotaMb);
      if (full && deps.quotaMode === 'watchdog') throw quotaExceeded(quotaMb);
      const notes = [
        ...(oomKilled ? ['The command was killed: the sandbox ran out of memory.'] : []),
        ...(full
          ? [
              `The workspace is full: it reached its disk quota of ${quotaMb} MB, and ` +
                `writes fail until files are removed.`,
            ]
          : []),
      ];
      const output = [formatOutput(result, command.plainOutput === true), ...notes].join('\n');
      const outcome = await finish(
        output,
        command.reportsExitCode ? false : result.exitCode !== 0,
        result.exitCode,
        oomKilled,
      );
      return { ...outcome, quotaReached: full };
    },

    /** Commits the agent's changes on its result branch (inside the sandbox) and stores the diff and test outcome. */
    async collectResult(input: { agentId: string; baseSha: string; summary: string }): Promise<AgentResultSummary> {
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

    /**
     * A kill's first step: the agent's container goes at once, whatever runs in it, and its model call stops (the
     * teardown follows once the run has stopped). Idempotent.
     */
    async removeSandboxContainer(input: { agentId: string; killRequestedAt?: string }): Promise<void> {
      deps.modelCalls.abort(input.agentId); // a model call of the agent streaming on this host stops too
      deps.quotaWatch?.unwatch(input.agentId);
      await removeAgentContainer(input);
    },

    /** Removes the agent's container; the workspace with its result branch stays for inspection. Idempotent. */
    async teardownSandbox(input: { agentId: string; killRequestedAt?: string }): Promise<void> {
      await whileHeartbeating(async () => {
        deps.quotaWatch?.unwatch(input.agentId);
        await removeAgentContainer(input);
        void deps.warmPool?.refill(); // a place is free again
        await releaseWorkspace(workspaceOf(input.agentId));
      });
    },
  };
}

/**
 * Where quotas are only watched: resumes the watch over this host's live sandboxes after the worker
 * (re)started, since a sandbox outlives the worker process that launched it.
 */
export async function watchLiveSandboxes(
  deps: Pick<AgentSandboxDeps, 'prisma' | 'quotaWatch' | 'hostQueue' | 'workspacesDir' | 'workspaceMaxMb'>,
): Promise<number> {
  const watch = deps.quotaWatch;
  if (!watch) return 0;
  const live = await deps.prisma.agent.findMany({
    where: { hostQueue: deps.hostQueue, state: { notIn: [...TERMINAL_STATES] } },
    select: { id: true, options: true },
  });
  for (const agent of live) {
    const quotaMb = Math.min(clampLimits((agent.options as AgentOptions).resources).diskMb, deps.workspaceMaxMb);
    watch.watch(agent.id, containerNameFor(agent.id), path.join(deps.workspacesDir, agent.id), quotaMb);
  }
  return live.length;
}
