import { chown, realpath } from 'node:fs/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { applyAgentState } from '../../domain/agents/agent-states';
import { runProgram } from '../../platform/program-runner';
import { AGENT_LABEL, containerNameFor, DEADLINE_LABEL, WORKSPACE_LABEL } from '../../sandbox-runtime/agent-containers';
import { clampLimits, hardenedContainerSpec, SANDBOX_UID } from '../../sandbox-runtime/container-spec';
import { execInContainer } from '../../sandbox-runtime/containers';
import { CloneFailed, cloneRepository } from '../../sandbox-runtime/repository-clone';
import { checkOutParentResult, type ParentResult } from '../../sandbox-runtime/follow-up';
import { dropDanglingLink } from '../../sandbox-runtime/warm-pool';
import { prepareWorkspace } from '../../sandbox-runtime/workspace';
import type { AgentContext, AgentOptions } from '../../shared/agent-schemas';
import type { LaunchedSandbox } from '../../workflows/agent-run/contract';
import { stopIfCancelled, untilStored, whileHeartbeating } from '../heartbeat';
import { quotaOf, workspaceOf, type AgentSandboxDeps } from './deps';
import { SANDBOX_FAILED } from './failures';
import { forgetRemoval } from './liveness';

/** What the state `running` says of the sandbox (its transition and event). */
const runningDetail = (containerName: string, deps: Pick<AgentSandboxDeps, 'hostQueue'>): string =>
  `sandbox ${containerName} on ${deps.hostQueue}`;

interface LaunchFacts {
  allowLocal: boolean;
  parent: ParentResult | null;
}

export interface LaunchInput {
  agentId: string;
  workspaceId: string;
  context: AgentContext;
  options: AgentOptions;
  deadline: string;
}

/** The launch of an agent's sandbox: its workspace, its checkout and its hardened container. */
export function createLaunchActivities(deps: AgentSandboxDeps) {
  const { prisma, docker } = deps;

  const containerSpec = (input: LaunchInput, workspace: string, containerName: string) =>
    hardenedContainerSpec({
      name: containerName,
      image: deps.sandboxImage,
      runtime: deps.sandboxRuntime,
      command: ['sleep', 'infinity'],
      workflowId: input.agentId,
      instance: deps.instance,
      workspaceHostPath: workspace,
      limits: { ...input.options.resources, diskMb: quotaOf(deps, input.options) },
      labels: { [AGENT_LABEL]: input.agentId, [WORKSPACE_LABEL]: input.workspaceId, [DEADLINE_LABEL]: input.deadline },
    });

  /**
   * Clones the agent's repository into its workspace (a hub's spawn may clone a local path only if its connection
   * allows it).
   */
  async function checkOut(
    input: LaunchInput,
    workspace: string,
    facts: Promise<LaunchFacts>,
  ): Promise<{ headSha: string | null }> {
    const { allowLocal, parent } = await facts;
    const dir = await realpath(workspace); // the slot itself when the workspace links to a warm one
    const { repository, branch } = input.context;
    const context = Context.current();
    const onGitError = (stderr: string): void => {
      context.log.warn('clone failed', { repository, branch, git: stderr.slice(-2000) });
    };
    const clone = { repository, branch, dir, allowLocal };
    let checkout: { headSha: string | null };
    try {
      const cache = deps.repositoryCache;
      checkout = await cloneRepository(deps.repositories, clone, {
        signal: context.cancellationSignal,
        onGitError,
        cache,
      });
      // A follow-up starts where its parent stopped; its result is measured from the parent's base.
      if (parent) {
        const { baseSha } = await checkOutParentResult(dir, parent, context.cancellationSignal);
        checkout = { headSha: baseSha ?? checkout.headSha };
      }
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
   * Whether the agent may clone a local path (yes, unless a hub spawned it through a connection that forbids it), and
   * for a follow-up the result it starts from.
   */
  async function launchFacts(agentId: string): Promise<LaunchFacts> {
    const agent = await prisma.agent.findUniqueOrThrow({
      where: { id: agentId },
      select: { originConnectionId: true, parentAgentId: true },
    });
    const parent = agent.parentAgentId
      ? await prisma.agentResultBundle.findUnique({
          where: { agentId: agent.parentAgentId },
          select: { agentId: true, commitSha: true, prerequisites: true, data: true },
        })
      : null;
    if (agent.originConnectionId === null) return { allowLocal: true, parent };
    const origin = await prisma.federationConnection.findUnique({ where: { id: agent.originConnectionId } });
    return { allowLocal: origin?.allowLocalRepositories === true, parent };
  }

  /** A warm container for this agent when the host has a pool and the agent asks for exactly the pool's limits. */
  async function claimWarm(input: LaunchInput, containerName: string, workspace: string): Promise<boolean> {
    const pool = deps.warmPool;
    if (!pool) return false;
    await dropDanglingLink(workspace); // of a claim a crashed worker did not finish
    const wanted = clampLimits(input.options.resources);
    const fits =
      quotaOf(deps, input.options) === pool.quotaMb &&
      (['memoryMb', 'cpus', 'pids'] as const).every((key) => wanted[key] === pool.limits[key]);
    return fits && (await pool.claim(containerName, workspace)) !== null;
  }

  /** The commit a checkout made by an earlier attempt stands at, read inside the sandbox. */
  async function headInSandbox(containerName: string): Promise<string> {
    const head = await execInContainer(docker, containerName, ['git', 'rev-parse', 'HEAD'], {
      timeoutMs: 30_000,
      maxOutputBytes: 1024,
    });
    if (head.exitCode !== 0)
      throw ApplicationFailure.nonRetryable(`the checkout has no commit: ${head.stderr.trim()}`, SANDBOX_FAILED);
    return head.stdout.trim();
  }

  async function launch(input: LaunchInput): Promise<LaunchedSandbox> {
    const workspace = workspaceOf(deps, input.agentId);
    const containerName = containerNameFor(input.agentId);
    forgetRemoval(containerName);
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
    /** Starts the container unless it runs (a warm one, or a retried launch's). */
    const startUnlessRunning = async (known: 'stopped' | 'unknown'): Promise<void> => {
      if (known === 'unknown' && (await docker.getContainer(containerName).inspect()).State.Running) return;
      await docker.getContainer(containerName).start();
      step('started', null);
      deps.metrics.sandboxStart.observe({ runtime: deps.sandboxRuntime }, (Date.now() - created) / 1000);
    };
    // Read while the sandbox is made ready; awaited by the checkout (a failure, then, is the launch's).
    const facts = launchFacts(input.agentId);
    facts.catch(() => undefined);
    let checkout: { headSha: string | null };
    if (!(await exists()) && step('warm', await claimWarm(input, containerName, workspace))) {
      // A warm container: already started, bound to the slot the workspace now links to.
      checkout = step('checkedOut', await checkOut(input, workspace, facts));
      await startUnlessRunning('unknown');
    } else {
      // The slot is the admission's: the container is created while the workspace is prepared, and started while the
      // repository is cloned. Its bind mount needs only the prepared workspace, and nothing runs in it before this
      // launch returns (as with a warm container, which is running before its checkout).
      const creating = exists().then(async (found): Promise<'stopped' | 'unknown'> => {
        if (found) return 'unknown'; // a retried launch's
        await deps.warmPool?.makeRoom();
        step('created', await docker.createContainer(containerSpec(input, workspace, containerName)));
        return 'stopped';
      });
      let starting: Promise<void> = Promise.resolve();
      // Awaited below, after the clone: until then a failure (an engine restarting) must not count as unhandled and end
      // the process.
      creating.catch(() => undefined);
      try {
        await prepareWorkspace(workspace, quotaOf(deps, input.options), deps.quotaMode);
        step('workspace', null);
        stopIfCancelled();
        starting = creating.then(startUnlessRunning);
        starting.catch(() => undefined);
        checkout = step('checkedOut', await checkOut(input, workspace, facts));
      } finally {
        await Promise.allSettled([creating, starting]);
      }
      await creating;
      await starting;
    }
    stopIfCancelled();
    // A retried launch reuses its checkout: its commit is then read inside the sandbox.
    const headSha = checkout.headSha ?? (await headInSandbox(containerName));
    // Ready: the state is recorded here, with the host, and not by one more activity after this one.
    const running = { agentId: input.agentId, state: 'running' as const, detail: runningDetail(containerName, deps) };
    await untilStored(() =>
      prisma.$transaction((tx) => applyAgentState(tx, running, deps.metrics, { hostQueue: deps.hostQueue })),
    );
    deps.quotaWatch?.watch(input.agentId, containerName, workspace, quotaOf(deps, input.options));
    Context.current().log.debug('sandbox launched', { agentId: input.agentId, ...steps, done: Date.now() - created });
    return { hostQueue: deps.hostQueue, containerName, baseSha: headSha };
  }

  return {
    /**
     * Clones the repository into a per-agent workspace and starts the agent's hardened container on this host, in the
     * slot the admission workflow gave the agent here, and records the agent's state `running`. Idempotent: the
     * container is named after the agent, so a retry finds it instead of starting a second one. Heartbeats, and stops
     * between steps on a kill. Returns this host's task queue for the sandbox activities that follow.
     */
    async launchSandbox(input: LaunchInput): Promise<LaunchedSandbox> {
      return await whileHeartbeating(() => launch(input));
    },
  };
}
