import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { LaunchedSandbox, ToolOutcome } from '../../workflows/agent-run/contract';
import type { ModelTurn } from '../../activities/model';
import { AgentContextSchema, AgentOptionsSchema } from '../../shared/agent-schemas';
import { sandboxHostQueue } from '../../shared/task-queues';
import { slotGrantedSignal, type SlotAnswer } from '../../workflows/admission/contract';
import {
  AGENT_RUN_FAILURES,
  AGENT_RUN_WORKFLOW,
  agentStatusQuery,
  killAgentSignal,
  type AgentRunInput,
  type AgentStatus,
} from '../../workflows/agent-run/contract';
import {
  eventually,
  untilCancelled,
  workflowEnv,
  type StubActivities,
  type WorkflowEnv,
} from '../helpers/workflow-env';

/**
 * agentRun's every path with stub activities on the real Temporal server: kill in each phase, the
 * deadline, continue-as-new, budgets, a model refusal, a worker lost under a call. The real-Docker
 * tests (tests/integration) show what only the engine can: containers, exec, removal.
 */

const done = (text = 'done'): ModelTurn => ({
  stopReason: 'end_turn',
  toolCalls: [],
  usage: { inputTokens: 10, outputTokens: 5 },
  text,
});
const asksForTool = (id: string): ModelTurn => ({
  stopReason: 'tool_use',
  toolCalls: [{ id, name: 'bash', label: 'bash `ls`' }],
  usage: { inputTokens: 100, outputTokens: 20 },
  text: `turn with ${id}`,
});
const TOOL_OK: ToolOutcome = { status: 'finished', isError: false, exitCode: 0, oomKilled: false };

interface Script {
  slot?: () => SlotAnswer;
  launch?: () => Promise<LaunchedSandbox>;
  model?: (turn: number) => Promise<ModelTurn>;
  tool?: () => Promise<ToolOutcome>;
  collect?: () => Promise<void>;
}

interface Seen {
  states: string[];
  calls: string[];
  modelCalls: number;
}

/** Each test's agent has its own script; the stubs find it by the agentId every activity is given. */
const scripts = new Map<string, { script: Script; seen: Seen }>();
const HOST_ID = `host-${randomUUID()}`;
const HOST_QUEUE = sandboxHostQueue(HOST_ID);

function agent(agentId: string): { script: Script; seen: Seen } {
  const entry = scripts.get(agentId);
  if (!entry) throw new Error(`no script for ${agentId}`);
  return entry;
}

const activities: StubActivities = {
  requestSlot: ({ agentId }) =>
    Promise.resolve(agent(agentId).script.slot?.() ?? { state: 'admitted', hostId: HOST_ID }),
  recordAgentState: ({ agentId, state }) => {
    agent(agentId).seen.states.push(state);
    return Promise.resolve();
  },
  async launchSandbox({ agentId }) {
    const { script, seen } = agent(agentId);
    seen.calls.push('launch');
    const launched = script.launch ? await script.launch() : null;
    seen.states.push('running'); // the launch records it
    return launched ?? { hostQueue: HOST_QUEUE, containerName: `agent-${agentId}`, baseSha: 'base' };
  },
  async callModel({ agentId, turn }) {
    const { script, seen } = agent(agentId);
    seen.modelCalls++;
    return script.model ? await script.model(turn) : done();
  },
  async runTool({ agentId }) {
    const { script, seen } = agent(agentId);
    seen.calls.push('tool');
    return script.tool ? await script.tool() : TOOL_OK;
  },
  async collectResult({ agentId }) {
    const { script, seen } = agent(agentId);
    seen.calls.push('collect');
    await script.collect?.();
    return { branch: `agent/${agentId}`, commitSha: 'c0ffee', filesChanged: 1, testExitCode: 0 };
  },
  removeSandboxContainer: ({ agentId }) => {
    agent(agentId).seen.calls.push('remove now');
    return Promise.resolve();
  },
  teardownSandbox: ({ agentId }) => {
    agent(agentId).seen.calls.push('teardown');
    return Promise.resolve();
  },
};

let env: WorkflowEnv;
beforeAll(async () => {
  env = await workflowEnv();
  await env.startWorkers(activities, [env.taskQueue, HOST_QUEUE]);
});
afterAll(async () => {
  await env.close();
});

function inputFor(
  agentId: string,
  options: Record<string, unknown> = {},
  extra: Partial<AgentRunInput> = {},
): AgentRunInput {
  return {
    agentId,
    workspaceId: 'workspace',
    taskId: 'task',
    agentType: 'worker',
    context: AgentContextSchema.parse({ repository: '/repo', branch: 'main', workItems: ['do it'] }),
    options: AgentOptionsSchema.parse({ maxRetries: 0, ...options }),
    initialState: 'spawning',
    ...extra,
  };
}

type Handle = ReturnType<WorkflowEnv['client']['workflow']['getHandle']>;

/** Starts one agent that follows `script`; the test gets its handle and what its activities saw. */
async function runAgent<T>(
  script: Script,
  options: Record<string, unknown>,
  body: (handle: Handle, seen: Seen) => Promise<T>,
  extra: Partial<AgentRunInput> = {},
): Promise<T> {
  const agentId = `agent-${randomUUID()}`;
  const seen: Seen = { states: [], calls: [], modelCalls: 0 };
  scripts.set(agentId, { script, seen });
  const args = [inputFor(agentId, options, extra)];
  const handle = await env.client.workflow.start(AGENT_RUN_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: agentId,
    args,
  });
  return await body(handle, seen);
}

const failureOf = async (result: Promise<unknown>): Promise<string> => {
  const error: unknown = await result.then(
    () => null,
    (caught: unknown) => caught,
  );
  if (!(error instanceof WorkflowFailedError) || !(error.cause instanceof Error))
    throw new Error('the run did not fail');
  return error.cause.message;
};

describe('agentRun', () => {
  it('runs turns and tools to completion, then collects and tears down', async () => {
    const turns = [asksForTool('t1'), done('all done')];
    await runAgent({ model: (turn) => Promise.resolve(turns[turn] ?? done()) }, {}, async (handle, seen) => {
      const status = (await handle.result()) as AgentStatus;
      expect(status).toMatchObject({
        state: 'completed',
        turn: 2,
        lastTool: 'bash',
        usage: { inputTokens: 110, outputTokens: 25 },
      });
      expect(seen.states).toEqual(['running', 'completed']);
      expect(seen.calls).toEqual(['launch', 'tool', 'collect', 'teardown']);
    });
  });

  it('waits queued without polling until the admission signal names the host', async () => {
    const script: Script = { slot: () => ({ state: 'queued', ahead: 3 }) };
    await runAgent(
      script,
      {},
      async (handle, seen) => {
        await eventually(() => seen.states.includes('queued'));
        expect(seen.calls).toEqual([]);
        await handle.signal(slotGrantedSignal, { hostId: HOST_ID });
        expect(await handle.result()).toMatchObject({ state: 'completed' });
        expect(seen.states).toEqual(['queued', 'spawning', 'running', 'completed']);
      },
      { initialState: 'queued' },
    );
  });

  it('killed while queued: ends killed, launches nothing and tears nothing down', async () => {
    await runAgent({ slot: () => ({ state: 'queued', ahead: 1 }) }, {}, async (handle, seen) => {
      await eventually(() => seen.states.includes('queued'));
      await handle.signal(killAgentSignal, { reason: 'not needed' });
      expect(await handle.result()).toMatchObject({ state: 'killed' });
      expect(seen.calls).toEqual([]);
    });
  });

  it('killed while launching: ends killed and tears down on the chosen host', async () => {
    await runAgent({ launch: untilCancelled }, {}, async (handle, seen) => {
      await eventually(() => seen.calls.includes('launch'));
      await handle.signal(killAgentSignal, {});
      expect(await handle.result()).toMatchObject({ state: 'killed' });
      expect(seen.calls).toEqual(['launch', 'teardown']);
      expect(seen.states).toEqual(['killed']);
    });
  });

  it('killed during a tool call: the sandbox is removed at once, then torn down', async () => {
    const script: Script = { model: () => Promise.resolve(asksForTool('t1')), tool: untilCancelled };
    await runAgent(script, {}, async (handle, seen) => {
      await eventually(() => seen.calls.includes('tool'));
      await handle.signal(killAgentSignal, { reason: 'wrong task' });
      const status = (await handle.result()) as AgentStatus;
      expect(status.state).toBe('killed');
      expect(seen.calls).toEqual(['launch', 'tool', 'remove now', 'teardown']);
    });
  });

  it('killed during a model call: ends killed without collecting', async () => {
    await runAgent({ model: untilCancelled }, {}, async (handle, seen) => {
      await eventually(() => seen.modelCalls > 0);
      await handle.signal(killAgentSignal, {});
      expect(await handle.result()).toMatchObject({ state: 'killed' });
      expect(seen.calls).not.toContain('collect');
      expect(seen.calls).toContain('teardown');
    });
  });

  it('killed while collecting: the kill is what the run ends as', async () => {
    await runAgent({ collect: untilCancelled }, {}, async (handle, seen) => {
      await eventually(() => seen.calls.includes('collect'));
      await handle.signal(killAgentSignal, { reason: 'enough' });
      expect(await handle.result()).toMatchObject({ state: 'killed' });
      expect(seen.states.at(-1)).toBe('killed');
    });
  });

  it('times out at the per-task deadline, whatever is in flight', async () => {
    await runAgent(
      { model: () => Promise.resolve(asksForTool('t1')), tool: untilCancelled },
      { timeout: 1 },
      async (handle, seen) => {
        expect(await handle.result()).toMatchObject({ state: 'timed_out' });
        const status = await handle.query(agentStatusQuery);
        expect(status).toMatchObject({ state: 'timed_out', error: 'timed out after 1 s' });
        expect(seen.calls.at(-1)).toBe('teardown');
      },
    );
  });

  it('continues as new every turnsPerRun turns, with the sandbox and the counts carried', async () => {
    const turns = [asksForTool('t1'), asksForTool('t2'), asksForTool('t3'), done()];
    const script: Script = { model: (turn) => Promise.resolve(turns[turn] ?? done()) };
    await runAgent(
      script,
      {},
      async (handle, seen) => {
        const status = (await handle.result()) as AgentStatus;
        expect(status).toMatchObject({ state: 'completed', turn: 4, usage: { inputTokens: 310, outputTokens: 65 } });
        expect(seen.calls.filter((call) => call === 'launch')).toHaveLength(1);
        // Three runs continued as new; visibility catches up with closed runs a moment later.
        const continued = async (): Promise<number> => {
          let count = 0;
          const query = `WorkflowId = '${handle.workflowId}' AND ExecutionStatus = 'ContinuedAsNew'`;
          for await (const run of env.client.workflow.list({ query }))
            if (run.status.name === 'CONTINUED_AS_NEW') count++;
          return count;
        };
        await eventually(async () => (await continued()) >= 3);
      },
      { turnsPerRun: 1 },
    );
  });

  it('stops failed at the turn limit and at the token budget', async () => {
    const script: Script = { model: () => Promise.resolve(asksForTool(`t-${randomUUID()}`)) };
    await runAgent(script, { maxTurns: 2 }, async (handle, seen) => {
      expect(await failureOf(handle.result())).toBe('stopped after reaching the maximum of 2 turns');
      expect(seen.calls).toEqual(['launch', 'tool', 'tool', 'collect', 'teardown']);
    });
    await runAgent(script, { tokenBudget: 200 }, async (handle, seen) => {
      expect(await failureOf(handle.result())).toBe('stopped after spending 240 tokens, over the budget of 200');
      // The reply over budget asked for a tool: it is not run.
      expect(seen.calls).toEqual(['launch', 'tool', 'collect', 'teardown']);
    });
  });

  it('fails with the model refusal: nothing collected, the sandbox torn down', async () => {
    const refusal = () =>
      Promise.reject(
        ApplicationFailure.nonRetryable(
          'model request rejected with 401: bad key',
          AGENT_RUN_FAILURES.modelRequestRejected,
        ),
      );
    await runAgent({ model: refusal }, { maxRetries: 3 }, async (handle, seen) => {
      expect(await failureOf(handle.result())).toBe('model request rejected with 401: bad key');
      expect(seen.modelCalls).toBe(1);
      expect(seen.calls).toEqual(['launch', 'teardown']);
      expect(seen.states).toEqual(['running', 'failed']);
    });
  });

  it('calls again when the worker shut down under a call, without spending the retries', async () => {
    let losses = 0;
    const model = (): Promise<ModelTurn> => {
      if (losses++ < 2)
        return Promise.reject(ApplicationFailure.retryable('deploy', AGENT_RUN_FAILURES.workerShutdown));
      return Promise.resolve(done());
    };
    await runAgent({ model }, { maxRetries: 0 }, async (handle, seen) => {
      expect(await handle.result()).toMatchObject({ state: 'completed' });
      expect(seen.modelCalls).toBe(3);
    });
  });
});
