import { execFile } from 'node:child_process';
import { chown, mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { PrismaClient } from '../prisma/client';
import type { AgentContext, AgentOptions, AgentType } from '../shared/agents';
import { TOOL_OUTPUT_LIMIT_BYTES, toolCommand, ToolInputError } from './agent-tools';
import { execInContainer, removeContainerIfPresent, type ExecResult } from './sandbox';
import { hardenedContainerSpec, SANDBOX_LABEL_INSTANCE, SANDBOX_UID } from './sandbox-spec';

const run = promisify(execFile);

export const SANDBOX_FAILED = 'SandboxFailed';
export const AGENT_LABEL = 'agent-orchestrator.agent-id';
export const WORKSPACE_LABEL = 'agent-orchestrator.workspace-id';
export const DEADLINE_LABEL = 'agent-orchestrator.deadline';

export interface AgentSandboxDeps {
  prisma: PrismaClient;
  docker: Docker;
  sandboxImage: string;
  workspacesDir: string;
  /** The task queue only this host's worker polls; sandbox activities are routed there. */
  hostQueue: string;
  /** The owning instance's label value (see instanceLabel). */
  instance: string;
  /** Agent sandboxes this host runs at once; more spawns wait in state queued. */
  maxConcurrentAgents: number;
}

/** One launch at a time per worker process (one worker process per host). */
let hostLock: Promise<unknown> = Promise.resolve();
function withHostLock<T>(critical: () => Promise<T>): Promise<T> {
  const result = hostLock.then(critical);
  hostLock = result.catch(() => undefined);
  return result;
}

export interface LaunchedSandbox {
  launched: true;
  hostQueue: string;
  containerName: string;
  baseSha: string;
}

/** `launched: false` means this host is at its agent limit: the workflow waits (state queued) and tries again. */
export type LaunchAttempt = LaunchedSandbox | { launched: false };

export interface ToolOutcome {
  status: 'finished' | 'unknown';
  isError: boolean;
  exitCode: number | null;
  oomKilled: boolean;
}

export interface AgentResultSummary {
  branch: string;
  commitSha: string | null;
  filesChanged: number;
  testExitCode: number | null;
}

export const containerNameFor = (agentId: string): string => `agent-${agentId}`;
export const resultBranchFor = (agentId: string): string => `agent/${agentId}`;

/** Clones on the host, before the agent touches the checkout: git never runs on the host in an agent-controlled repository. */
async function cloneRepository(context: AgentContext, dir: string): Promise<void> {
  const gitDir = await stat(path.join(dir, '.git')).catch(() => null);
  if (gitDir) return; // a retried launch reuses its checkout
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  try {
    await run('git', ['-c', 'protocol.ext.allow=never', 'clone', '--quiet', '--branch', context.branch, '--single-branch', '--', context.repository, dir], {
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
      timeout: 10 * 60 * 1000,
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? String(error);
    throw ApplicationFailure.nonRetryable(`cannot clone ${context.repository} (branch ${context.branch}): ${stderr.split('\n').at(-1) ?? ''}`, SANDBOX_FAILED);
  }
  await run('chown', ['-R', `${SANDBOX_UID}:${SANDBOX_UID}`, dir]).catch(() => chown(dir, SANDBOX_UID, SANDBOX_UID));
}

function formatOutput(result: ExecResult): string {
  const parts = [`exit code ${result.exitCode}${result.exitCode === 124 ? ' (timed out)' : ''}`];
  if (result.stdout) parts.push(result.stdout);
  if (result.stderr) parts.push(`stderr:\n${result.stderr}`);
  if (result.outputTruncated) parts.push(`[output truncated to ${TOOL_OUTPUT_LIMIT_BYTES} bytes per stream]`);
  return parts.join('\n');
}

/** Whether the container's memory cgroup has killed a process (cgroup v1 or v2), read from inside. */
async function oomKillCount(docker: Docker, containerName: string): Promise<number> {
  const probe = await execInContainer(
    docker,
    containerName,
    ['sh', '-c', 'cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | grep -E "^oom_kill " | head -n 1'],
    { timeoutMs: 10_000, maxOutputBytes: 1024 },
  ).catch(() => null);
  return Number(/oom_kill (\d+)/.exec(probe?.stdout ?? '')?.[1] ?? 0);
}

export function createAgentSandboxActivities(deps: AgentSandboxDeps) {
  const { prisma, docker } = deps;

  async function ensureRunning(containerName: string): Promise<void> {
    const state = await docker
      .getContainer(containerName)
      .inspect()
      .then((info) => info.State)
      .catch(() => null);
    if (!state) throw ApplicationFailure.nonRetryable(`the sandbox ${containerName} is gone`, SANDBOX_FAILED);
    if (!state.Running) {
      const reason = state.OOMKilled ? 'it ran out of memory' : `it exited with code ${state.ExitCode}`;
      throw ApplicationFailure.nonRetryable(`the sandbox stopped unexpectedly: ${reason}`, SANDBOX_FAILED);
    }
  }

  return {
    /**
     * Reserves a slot on this host (or answers that there is none), clones the repository into a
     * per-agent workspace and starts the agent's hardened container. Idempotent: the container is
     * named after the agent, so a retry finds it instead of starting a second one. Returns this
     * host's task queue for the sandbox activities that follow.
     */
    async launchSandbox(input: { agentId: string; workspaceId: string; context: AgentContext; options: AgentOptions; deadline: string }): Promise<LaunchAttempt> {
      const workspace = path.join(deps.workspacesDir, input.agentId);
      const containerName = containerNameFor(input.agentId);
      // Counting and creating under one lock keeps this host at its limit; creating (not yet starting) reserves the slot.
      const reserved = await withHostLock(async () => {
        if (await docker.getContainer(containerName).inspect().catch(() => null)) return true;
        const active = await docker.listContainers({ all: true, filters: { label: [AGENT_LABEL, `${SANDBOX_LABEL_INSTANCE}=${deps.instance}`] } });
        if (active.length >= deps.maxConcurrentAgents) return false;
        await mkdir(workspace, { recursive: true });
        await docker.createContainer(
          hardenedContainerSpec({
            name: containerName,
            image: deps.sandboxImage,
            command: ['sleep', 'infinity'],
            workflowId: input.agentId,
            instance: deps.instance,
            workspaceHostPath: workspace,
            limits: input.options.resources,
            labels: { [AGENT_LABEL]: input.agentId, [WORKSPACE_LABEL]: input.workspaceId, [DEADLINE_LABEL]: input.deadline },
          }),
        );
        return true;
      });
      if (!reserved) return { launched: false };

      await cloneRepository(input.context, workspace);
      const state = (await docker.getContainer(containerName).inspect()).State;
      if (!state.Running) await docker.getContainer(containerName).start();
      const head = await execInContainer(docker, containerName, ['git', 'rev-parse', 'HEAD'], { timeoutMs: 30_000, maxOutputBytes: 1024 });
      if (head.exitCode !== 0) throw ApplicationFailure.nonRetryable(`the checkout has no commit: ${head.stderr.trim()}`, SANDBOX_FAILED);
      await prisma.agent.update({ where: { id: input.agentId }, data: { hostQueue: deps.hostQueue } });
      return { launched: true, hostQueue: deps.hostQueue, containerName, baseSha: head.stdout.trim() };
    },

    /**
     * Runs one tool call inside the sandbox, at most once: the call is claimed (pending -> started)
     * before it runs, so an attempt after a crash finds it started and reports its outcome as unknown
     * instead of running it again.
     */
    async runTool(input: { agentId: string; agentType: AgentType; toolCallId: string }): Promise<ToolOutcome> {
      const claimed = await prisma.toolCall.updateMany({ where: { id: input.toolCallId, status: 'pending' }, data: { status: 'started', startedAt: new Date() } });
      if (claimed.count === 0) {
        const call = await prisma.toolCall.findUniqueOrThrow({ where: { id: input.toolCallId } });
        if (call.status === 'finished') return { status: 'finished', isError: call.isError, exitCode: call.exitCode, oomKilled: false };
        await prisma.toolCall.update({ where: { id: call.id }, data: { status: 'unknown' } });
        return { status: 'unknown', isError: true, exitCode: null, oomKilled: false };
      }
      const call = await prisma.toolCall.findUniqueOrThrow({ where: { id: input.toolCallId } });
      await prisma.agent.update({ where: { id: input.agentId }, data: { lastTool: call.name } });
      const containerName = containerNameFor(input.agentId);
      const finish = async (output: string, isError: boolean, exitCode: number | null, oomKilled = false): Promise<ToolOutcome> => {
        await prisma.toolCall.update({ where: { id: call.id }, data: { status: 'finished', output, isError, exitCode, finishedAt: new Date() } });
        return { status: 'finished', isError, exitCode, oomKilled };
      };

      let command;
      try {
        command = toolCommand(input.agentType, call.name, call.input);
      } catch (error) {
        if (error instanceof ToolInputError) return finish(error.message, true, null);
        throw error;
      }
      await ensureRunning(containerName);
      const ooms = await oomKillCount(docker, containerName);
      const heartbeat = setInterval(() => Context.current().heartbeat(), 5_000);
      let result: ExecResult;
      try {
        result = await execInContainer(docker, containerName, command.command, {
          timeoutMs: command.timeoutSeconds * 1000,
          maxOutputBytes: TOOL_OUTPUT_LIMIT_BYTES,
          signal: Context.current().cancellationSignal,
        });
      } finally {
        clearInterval(heartbeat);
      }
      await ensureRunning(containerName);
      const oomKilled = (await oomKillCount(docker, containerName)) > ooms;
      const output = oomKilled ? `${formatOutput(result)}\nThe command was killed: the sandbox ran out of memory.` : formatOutput(result);
      return finish(output, command.reportsExitCode ? false : result.exitCode !== 0, result.exitCode, oomKilled);
    },

    /** Commits the agent's changes on its result branch (inside the sandbox) and stores the diff and test outcome. */
    async collectResult(input: { agentId: string; baseSha: string; summary: string }): Promise<AgentResultSummary> {
      const containerName = containerNameFor(input.agentId);
      await ensureRunning(containerName);
      const branch = resultBranchFor(input.agentId);
      // Runs inside the sandbox: the agent controls this repository (hooks, config), so git never runs on the host here.
      const script = [
        'set -e',
        "export GIT_AUTHOR_NAME='Claude agent' GIT_AUTHOR_EMAIL=agent@localhost GIT_COMMITTER_NAME='Claude agent' GIT_COMMITTER_EMAIL=agent@localhost",
        'git checkout -q -B "$1"',
        'git add -A',
        'if ! git diff --cached --quiet; then git -c core.hooksPath=/dev/null commit -q --no-verify -m "$2"; fi',
        'git rev-parse HEAD',
      ].join('\n');
      const committed = await execInContainer(docker, containerName, ['sh', '-c', script, 'collect', branch, input.summary || 'Agent changes'], { timeoutMs: 120_000, maxOutputBytes: 64 * 1024 });
      if (committed.exitCode !== 0) throw ApplicationFailure.retryable(`committing the result failed: ${committed.stderr.trim()}`, SANDBOX_FAILED);
      const commitSha = committed.stdout.trim().split('\n').at(-1) ?? null;
      const diff = await execInContainer(docker, containerName, ['git', 'diff', input.baseSha, 'HEAD'], { timeoutMs: 120_000, maxOutputBytes: 1024 * 1024 });
      const stat = await execInContainer(docker, containerName, ['git', 'diff', '--name-only', input.baseSha, 'HEAD'], { timeoutMs: 60_000, maxOutputBytes: 256 * 1024 });
      const lastTestRun = await prisma.toolCall.findFirst({ where: { agentId: input.agentId, name: 'run_tests', status: 'finished' }, orderBy: { finishedAt: 'desc' } });
      const changed = commitSha === input.baseSha ? null : commitSha;
      const data = {
        branch,
        commitSha: changed,
        diff: diff.stdout,
        testOutput: lastTestRun?.output ?? null,
        testExitCode: lastTestRun?.exitCode ?? null,
        summary: input.summary,
      };
      await prisma.agentResult.upsert({ where: { agentId: input.agentId }, create: { agentId: input.agentId, ...data }, update: data });
      return { branch, commitSha: changed, filesChanged: stat.stdout.split('\n').filter(Boolean).length, testExitCode: data.testExitCode };
    },

    /** Removes the agent's container; the workspace with its result branch stays for inspection. Idempotent. */
    async teardownSandbox(input: { agentId: string }): Promise<void> {
      await removeContainerIfPresent(docker, containerNameFor(input.agentId));
    },
  };
}
