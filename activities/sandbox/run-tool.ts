import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { appendEventStatements } from '../../domain/agents/agent-events';
import { containerNameFor } from '../../sandbox-runtime/agent-containers';
import {
  formatToolOutput,
  TOOL_OUTPUT_LIMIT_BYTES,
  toolCommand,
  ToolInputError,
} from '../../sandbox-runtime/agent-tools';
import { ExecNotStarted, runDetachedInContainer, type DetachedOutcome } from '../../sandbox-runtime/containers';
import { oomKillCount } from '../../sandbox-runtime/oom';
import { quotaReached } from '../../sandbox-runtime/workspace';
import type { AgentOptions } from '../../shared/agent-schemas';
import type { AgentType } from '../../shared/vocabulary';
import type { ToolOutcome } from '../../workflows/agent-run/contract';
import { cancelledByShutdown, WORKER_SHUTDOWN_FAILURE } from '../heartbeat';
import { quotaOf, workspaceOf, type AgentSandboxDeps } from './deps';
import { quotaExceeded } from './failures';
import { ensureRunning, settled } from './liveness';

type ToolCallRow = { id: string; turn: number; name: string };

/** A tool call inside the agent's sandbox, run at most once. */
export function createRunToolActivities(deps: AgentSandboxDeps) {
  const { prisma, docker } = deps;

  /** Stores a call's outcome with its event, and counts it. */
  async function record(
    agentId: string,
    call: ToolCallRow,
    outcome: { status: 'finished' | 'unknown'; output: string; isError: boolean; exitCode: number | null },
  ): Promise<void> {
    const { status, output, isError, exitCode } = outcome;
    await prisma.$transaction([
      prisma.toolCall.update({
        where: { agentId_id: { agentId, id: call.id } },
        data: { status, output, isError, exitCode, finishedAt: new Date() },
      }),
      ...appendEventStatements(prisma, agentId, {
        type: 'tool',
        turn: call.turn + 1,
        toolCallId: call.id,
        tool: call.name,
        status,
        exitCode,
        isError,
      }),
    ]);
    const exitStatus =
      status === 'unknown' ? 'unknown' : exitCode === null ? 'error' : exitCode === 0 ? '0' : 'nonzero';
    deps.metrics.toolCalls.inc({ tool: call.name, exit_status: exitStatus });
  }

  async function finish(
    agentId: string,
    call: ToolCallRow,
    output: string,
    isError: boolean,
    exitCode: number | null,
    oomKilled = false,
  ): Promise<ToolOutcome> {
    await record(agentId, call, { status: 'finished', output, isError, exitCode });
    return { status: 'finished', isError, exitCode, oomKilled };
  }

  /**
   * A call whose outcome cannot be known (its keeper in the sandbox ended without a result): said so to the model and
   * the log.
   */
  async function unknownOutcome(agentId: string, call: ToolCallRow, reason: string): Promise<ToolOutcome> {
    await record(agentId, call, { status: 'unknown', output: reason, isError: true, exitCode: null });
    return { status: 'unknown', isError: true, exitCode: null, oomKilled: false };
  }

  return {
    /**
     * Runs one tool call inside the sandbox, at most once, detached: the call runs in the sandbox whatever happens to
     * this worker, and an attempt after a deploy or a crash re-attaches to it (the sandbox itself claims the call, see
     * TOOL_RUNNER) and reports its real outcome. Only a sandbox that is gone leaves an outcome unknown.
     */
    async runTool(input: { agentId: string; agentType: AgentType; toolCallId: string }): Promise<ToolOutcome> {
      const { agentId } = input;
      // Tool call ids come from the model: unique within one agent's conversation, not across agents.
      const key = { agentId_id: { agentId, id: input.toolCallId } };
      const [agent, call] = await Promise.all([
        prisma.agent.findUniqueOrThrow({ where: { id: agentId }, select: { options: true } }),
        prisma.toolCall.findUniqueOrThrow({ where: key }),
      ]);
      const options = agent.options as AgentOptions;
      const quotaMb = quotaOf(deps, options);
      // A sandbox the quota watchdog froze runs nothing more.
      if (deps.quotaWatch?.breachOf(agentId)) throw quotaExceeded(quotaMb);
      if (call.status === 'finished')
        return { status: 'finished', isError: call.isError, exitCode: call.exitCode, oomKilled: false };
      if (call.status !== 'pending' && call.status !== 'started')
        return { status: 'unknown', isError: true, exitCode: null, oomKilled: false };
      // Claimed by this attempt (pending → started), or started by an earlier one: either way it is run or re-attached
      // to below (the sandbox itself runs a call once), and shown as the agent's tool meanwhile.
      const [claimed] = await Promise.all([
        prisma.toolCall.updateMany({
          where: { agentId, id: input.toolCallId, status: 'pending' },
          data: { status: 'started', startedAt: new Date() },
        }),
        prisma.agent.update({ where: { id: agentId }, data: { lastTool: call.name } }),
      ]);
      const containerName = containerNameFor(agentId);

      let command;
      try {
        command = toolCommand(input.agentType, call.name, call.input, options.commandTimeout);
      } catch (error) {
        if (error instanceof ToolInputError) return finish(agentId, call, error.message, true, null);
        throw error;
      }
      const ooms = await oomKillCount(docker, containerName);
      const workspace = workspaceOf(deps, agentId);
      // Stops waiting on a kill or a worker shutdown, and (where the quota is only watched) when the workspace goes
      // past it.
      const stop = new AbortController();
      const cancellation = Context.current().cancellationSignal;
      const onCancel = (): void => stop.abort();
      cancellation.addEventListener('abort', onCancel, { once: true });
      const quota = { exceeded: false }; // set when the watchdog freezes the sandbox
      const stopWatching = deps.quotaWatch?.whenBreached(agentId, () => {
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
        // No exec was made: nothing ran. A call this attempt claimed goes back to pending (the run's end then says it
        // was never run), and the sandbox's state is the verdict (removed, frozen, stopped, or the engine away).
        if (error instanceof ExecNotStarted) {
          if (claimed.count === 1)
            await prisma.toolCall.updateMany({
              where: { agentId, id: input.toolCallId, status: 'started' },
              data: { status: 'pending', startedAt: null },
            });
          await ensureRunning(docker, containerName);
          throw error;
        }
        if (quota.exceeded || (deps.quotaMode === 'watchdog' && (await quotaReached(workspace, 'watchdog', quotaMb)))) {
          throw quotaExceeded(quotaMb);
        }
        if (cancelledByShutdown())
          throw ApplicationFailure.retryable(
            `the worker shut down while ${call.name} ran; the call goes on and is re-attached`,
            WORKER_SHUTDOWN_FAILURE,
          );
        // A sandbox that stopped or went (a kill removes it at once) is the verdict, not how the exec noticed.
        if (!Context.current().cancellationSignal.aborted) await ensureRunning(docker, containerName);
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
        await ensureRunning(docker, containerName); // a sandbox that went is the verdict
        return await unknownOutcome(agentId, call, result.lost);
      }
      // Ended by a signal: the sandbox itself may have ended (a kill removes it, a moment after its processes). A
      // command that exited on its own had a running sandbox; the next call's exec finds one that stopped since.
      if (result.exitCode >= 128) {
        if (result.exitCode === 137) await settled(docker, containerName);
        await ensureRunning(docker, containerName);
      }
      const oomKilled = (await oomKillCount(docker, containerName)) > ooms;
      const full = await quotaReached(workspace, deps.quotaMode, quotaMb);
      if (full && deps.quotaMode === 'watchdog') throw quotaExceeded(quotaMb);
      const notes = [
        ...(oomKilled ? ['The command was killed: the sandbox ran out of memory.'] : []),
        ...(full
          ? [
              `The workspace is full: it reached its disk quota of ${quotaMb} MB, ` +
                'and writes fail until files are removed.',
            ]
          : []),
      ];
      const output = [formatToolOutput(result, command.plainOutput === true), ...notes].join('\n');
      const isError = command.reportsExitCode ? false : result.exitCode !== 0;
      const outcome = await finish(agentId, call, output, isError, result.exitCode, oomKilled);
      return { ...outcome, quotaReached: full };
    },
  };
}
