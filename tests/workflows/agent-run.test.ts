import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
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
  decideApprovalUpdate,
  pauseUpdate,
  resumeUpdate,
  sendMessageUpdate,
  STEERING_REFUSALS,
  type AgentRunInput,
  type AgentStatus,
  type ApprovalRecord,
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
  /** The operator messages each model call carried, by turn. */
  messages: Array<{ turn: number; texts: string[] }>;
  approvals: ApprovalRecord[];
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
  async callModel({ agentId, turn, messages }) {
    const { script, seen } = agent(agentId);
    seen.modelCalls++;
    if (messages) seen.messages.push({ turn, texts: messages.map((message) => message.text) });
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
  recordApproval: (record) => {
    agent(record.agentId).seen.approvals.push(record);
    return Promise.resolve();
  },
  pauseSandbox: ({ agentId }) => {
    agent(agentId).seen.calls.push('pause');
    return Promise.resolve();
  },
  resumeSandbox: ({ agentId }) => {
    agent(agentId).seen.calls.push('resume');
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
  const seen: Seen = { states: [], calls: [], modelCalls: 0, messages: [], approvals: [] };
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

const asksForGatedPush = (id: string): ModelTurn => ({
  stopReason: 'tool_use',
  toolCalls: [{ id, name: 'bash', label: 'bash `git push`', approvalRule: 0 }],
  usage: { inputTokens: 100, outputTokens: 20 },
  text: 'pushing',
});
/** A gated push at turn 0, then done: the test decides what happens in between. */
const gatedThenDone: Script = { model: (turn) => Promise.resolve(turn === 0 ? asksForGatedPush('push-1') : done()) };
const GATE = { tool: 'bash', match: 'git push' };

/** The type of the ApplicationFailure a refused update carries. */
async function refusalOf(update: Promise<unknown>): Promise<string> {
  const error: unknown = await update.then(
    () => null,
    (caught: unknown) => caught,
  );
  if (!(error instanceof WorkflowUpdateFailedError) || !(error.cause instanceof ApplicationFailure))
    throw new Error(`the update was not refused: ${String(error)}`);
  return error.cause.type ?? '';
}

/** A tool call at turn 0 that runs until the test releases it, then done: the test steers meanwhile. */
function heldToolThenDone(): { script: Script; release: () => void } {
  let release: () => void = () => undefined;
  const toolRuns = new Promise<void>((resolve) => (release = resolve));
  const script: Script = {
    model: (turn) => Promise.resolve(turn === 0 ? asksForTool('t1') : done()),
    tool: async () => {
      await toolRuns;
      return TOOL_OK;
    },
  };
  return { script, release };
}

describe('agentRun steered by an operator', () => {
  it('a gated call waits with the sandbox paused, then runs once approved', async () => {
    await runAgent(gatedThenDone, { approvals: [GATE] }, async (handle, seen) => {
      await eventually(() => seen.states.includes('input_required'));
      const waiting = await handle.query(agentStatusQuery);
      expect(waiting.pendingApproval).toMatchObject({ toolCallId: 'push-1', label: 'bash `git push`', rule: 0 });
      expect(seen.calls).toEqual(['launch', 'pause']);
      // A call that does not wait is unknown; the one that waits takes one decision only.
      expect(
        await refusalOf(
          handle.executeUpdate(decideApprovalUpdate, { args: [{ toolCallId: 'other', decision: 'approve' }] }),
        ),
      ).toBe(STEERING_REFUSALS.unknownToolCall);
      const approve = { toolCallId: 'push-1', decision: 'approve' as const };
      expect(await handle.executeUpdate(decideApprovalUpdate, { args: [approve] })).toEqual(approve);
      expect(await refusalOf(handle.executeUpdate(decideApprovalUpdate, { args: [approve] }))).toBe(
        STEERING_REFUSALS.alreadyDecided,
      );
      expect(await handle.result()).toMatchObject({ state: 'completed', pendingApproval: null });
      expect(seen.calls).toEqual(['launch', 'pause', 'resume', 'tool', 'collect', 'teardown']);
      expect(seen.states).toEqual(['running', 'input_required', 'running', 'completed']);
      expect(seen.approvals.map((record) => record.phase)).toEqual(['requested', 'decided']);
      expect(seen.approvals[1]).toMatchObject({ decision: 'approve', decidedBy: 'operator' });
    });
  });

  it('a denied call never runs: the denial and its note are recorded as its result', async () => {
    await runAgent(gatedThenDone, { approvals: [GATE] }, async (handle, seen) => {
      await eventually(() => seen.states.includes('input_required'));
      const deny = { toolCallId: 'push-1', decision: 'deny' as const, note: 'open a pull request instead' };
      await handle.executeUpdate(decideApprovalUpdate, { args: [deny] });
      expect(await handle.result()).toMatchObject({ state: 'completed' });
      expect(seen.calls).toEqual(['launch', 'pause', 'resume', 'collect', 'teardown']);
      expect(seen.approvals[1]).toMatchObject({ decision: 'deny', decidedBy: 'operator', note: deny.note });
      expect(seen.modelCalls).toBe(2); // the model was told, and went on
    });
  });

  it("a call nobody decides gets its rule's onTimeout", async () => {
    const rule = { ...GATE, timeoutSeconds: 1, onTimeout: 'approve' };
    await runAgent(gatedThenDone, { approvals: [rule] }, async (handle, seen) => {
      expect(await handle.result()).toMatchObject({ state: 'completed' });
      expect(seen.approvals[1]).toMatchObject({ decision: 'approve', decidedBy: 'timeout', note: null });
      expect(seen.calls).toContain('tool');
      // Too late: the call was decided by its timeout.
      const late = handle.executeUpdate(decideApprovalUpdate, { args: [{ toolCallId: 'push-1', decision: 'deny' }] });
      await expect(late).rejects.toThrow();
    });
  });

  it("stops the task's clock while it waits, unless the task says waits count", async () => {
    await runAgent(gatedThenDone, { approvals: [GATE], timeout: 1 }, async (handle, seen) => {
      await eventually(() => seen.states.includes('input_required'));
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // past the timeout, waiting
      await handle.executeUpdate(decideApprovalUpdate, { args: [{ toolCallId: 'push-1', decision: 'approve' }] });
      expect(await handle.result()).toMatchObject({ state: 'completed' });
    });
    const counted = { approvals: [GATE], timeout: 1, waitsCountTowardTimeout: true };
    await runAgent(gatedThenDone, counted, async (handle, seen) => {
      expect(await handle.result()).toMatchObject({ state: 'timed_out' });
      expect(seen.calls).toEqual(['launch', 'pause', 'teardown']);
    });
  });

  it('a kill while a call waits ends the run killed and removes the paused sandbox', async () => {
    await runAgent(gatedThenDone, { approvals: [GATE] }, async (handle, seen) => {
      await eventually(() => seen.states.includes('input_required'));
      await handle.signal(killAgentSignal, { reason: 'not today' });
      expect(await handle.result()).toMatchObject({ state: 'killed' });
      // Nothing is in flight: the kill's removal and the teardown start together.
      expect([...seen.calls].sort()).toEqual(['launch', 'pause', 'remove now', 'teardown']);
    });
  });

  it("an operator's messages join the next model call, and one after the model is done gets another turn", async () => {
    const { script, release } = heldToolThenDone();
    await runAgent(script, {}, async (handle, seen) => {
      await eventually(() => seen.calls.includes('tool'));
      expect(await handle.executeUpdate(sendMessageUpdate, { args: [{ text: 'use tabs' }] })).toEqual({ position: 1 });
      expect(await handle.executeUpdate(sendMessageUpdate, { args: [{ text: 'and add a test' }] })).toEqual({
        position: 2,
      });
      release();
      expect(await handle.result()).toMatchObject({ state: 'completed', messages: { received: 2, delivered: 2 } });
      expect(seen.messages).toEqual([{ turn: 1, texts: ['use tabs', 'and add a test'] }]);
      // Once the run ended, a message is refused.
      await expect(handle.executeUpdate(sendMessageUpdate, { args: [{ text: 'too late' }] })).rejects.toThrow();
    });
  });

  it('pauses before its next step with the sandbox paused, and goes on when resumed', async () => {
    const { script, release } = heldToolThenDone();
    await runAgent(script, {}, async (handle, seen) => {
      await eventually(() => seen.calls.includes('tool'));
      expect(await refusalOf(handle.executeUpdate(resumeUpdate))).toBe(STEERING_REFUSALS.notPaused);
      expect(await handle.executeUpdate(pauseUpdate)).toEqual({ state: 'running', pauseRequested: true });
      release();
      await eventually(() => seen.states.includes('paused'));
      expect(seen.modelCalls).toBe(1); // no model call while paused
      expect(seen.calls).toEqual(['launch', 'tool', 'pause']);
      expect((await handle.query(agentStatusQuery)).state).toBe('paused');
      await handle.executeUpdate(resumeUpdate);
      expect(await handle.result()).toMatchObject({ state: 'completed' });
      expect(seen.states).toEqual(['running', 'paused', 'running', 'completed']);
      expect(seen.calls).toEqual(['launch', 'tool', 'pause', 'resume', 'collect', 'teardown']);
    });
  });
});
