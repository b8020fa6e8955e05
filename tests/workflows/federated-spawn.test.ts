import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { RemoteStatusPoll } from '../../activities/federation-commands';
import { AgentContextSchema } from '../../shared/agent-schemas';
import type { AgentState } from '../../shared/vocabulary';
import { killAgentSignal } from '../../workflows/agent-run/contract';
import {
  connectionStatusSignal,
  FEDERATED_SPAWN_WORKFLOW,
  federatedAgentStatusQuery,
  remoteAgentEventSignal,
  type FederatedAgentStatus,
  type FederatedSpawnInput,
  type RemoteAgentEvent,
} from '../../workflows/federated-spawn/contract';
import {
  FEDERATION_FAILURES,
  type OutboundCommand,
  type VerifiedCommand,
} from '../../workflows/federation-command/contract';
import { eventually, workflowEnv, type StubActivities, type WorkflowEnv } from '../helpers/workflow-env';

/**
 * federatedSpawn's paths with stub activities standing in for the spoke: events out of order and
 * duplicated, a refused spawn, kills delivered, undelivered and settled by the spawn's messageId, a
 * paused connection, the hub's own deadline and continue-as-new. The real two-instance tests
 * (tests/integration/federat*) show the signed HTTP between them.
 */

interface Spoke {
  /** Throws to say the spoke did not answer this command. */
  send?: (command: OutboundCommand) => void;
  reply: (command: OutboundCommand) => VerifiedCommand;
  /** Holds the reply back until it resolves. */
  beforeReply?: Promise<void>;
  poll?: () => RemoteStatusPoll;
}

interface Seen {
  commands: OutboundCommand[];
  /** States the workflow wrote to the hub's database, the final one last. */
  states: string[];
  failedMessages: string[];
}

const spokes = new Map<string, { spoke: Spoke; seen: Seen }>();
const byConnection = new Map<string, string>();
const spokeOf = (agentId: string): { spoke: Spoke; seen: Seen } => {
  const entry = spokes.get(agentId);
  if (!entry) throw new Error(`no spoke for ${agentId}`);
  return entry;
};
const agentOfConnection = (connectionId: string): string => byConnection.get(connectionId) ?? '';
const sent = new Map<string, OutboundCommand>();

const unreachable = (): never => {
  throw ApplicationFailure.retryable('connect ECONNREFUSED', FEDERATION_FAILURES.peerUnreachable);
};
const ok = (result: Record<string, unknown> | null): VerifiedCommand => ({ status: 'ok', error: null, result });
const progress = (turn: number) => ({
  turn,
  lastTool: turn > 0 ? 'bash' : null,
  usage: { inputTokens: turn, outputTokens: turn },
  updatedAt: new Date().toISOString(),
});
const polled = (state: AgentState, resultFetched = true): RemoteStatusPoll => ({
  kind: 'status',
  state,
  startedAt: new Date().toISOString(),
  progress: progress(3),
  error: null,
  resultFetched,
  contactAt: new Date().toISOString(),
});

const activities: StubActivities = {
  sendCommand(command) {
    const { spoke, seen } = spokeOf(agentOfConnection(command.connectionId));
    seen.commands.push(command);
    spoke.send?.(command);
    sent.set(command.messageId, command);
    return Promise.resolve({ commandId: command.messageId });
  },
  async verifyCommandReply(command) {
    const full = sent.get(command.messageId);
    if (!full) throw new Error('verified before sent');
    const { spoke } = spokeOf(agentOfConnection(command.connectionId));
    await spoke.beforeReply;
    return spoke.reply(full);
  },
  pollRemoteAgent({ agentId }) {
    return Promise.resolve(spokeOf(agentId).spoke.poll?.() ?? polled('running', false));
  },
  recordRemoteAgent: () => Promise.resolve(),
  recordFederatedState({ agentId, state }) {
    spokeOf(agentId).seen.states.push(state);
    return Promise.resolve();
  },
  // The result of a completed agent is fetched from the spoke (the real activity is tested with two instances).
  fetchRemoteResult: () => Promise.resolve('stored' as const),
  recordCommandFailure({ connectionId, messageId }) {
    spokeOf(agentOfConnection(connectionId)).seen.failedMessages.push(messageId);
    return Promise.resolve();
  },
};

let env: WorkflowEnv;
beforeAll(async () => {
  env = await workflowEnv();
  await env.startWorkers(activities, [env.taskQueue]);
});
afterAll(async () => {
  await env.close();
});

type Handle = ReturnType<WorkflowEnv['client']['workflow']['getHandle']>;
interface Run {
  handle: Handle;
  seen: Seen;
  spawnMessageId: string;
  /** Signals an agent.lifecycle event of the remote agent r1 (a new event id unless given). */
  event: (sequence: number, state: AgentState, turn: number, eventId?: string) => Promise<void>;
}

async function follow<T>(
  spoke: Spoke,
  body: (run: Run) => Promise<T>,
  extra: Partial<FederatedSpawnInput> = {},
  timeout?: number,
): Promise<T> {
  const agentId = `agent-${randomUUID()}`;
  const connectionId = randomUUID();
  const spawnMessageId = randomUUID();
  const seen: Seen = { commands: [], states: [], failedMessages: [] };
  spokes.set(agentId, { spoke, seen });
  byConnection.set(connectionId, agentId);
  const input: FederatedSpawnInput = {
    agentId,
    workspaceId: 'workspace',
    remote: { connectionId, instanceId: 'spoke-instance', name: 'spoke' },
    spawnMessageId,
    payload: {
      taskId: 'task',
      agentType: 'worker',
      context: AgentContextSchema.parse({ repository: '/repo', branch: 'main', workItems: ['do it'] }),
      ...(timeout ? { options: { timeout } } : {}),
    },
    spawnedAt: new Date().toISOString(),
    pollIntervalSeconds: 1,
    ...extra,
  };
  const handle = await env.client.workflow.start(FEDERATED_SPAWN_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: agentId,
    args: [input],
  });
  const event = async (
    sequence: number,
    state: AgentState,
    turn: number,
    eventId: string = randomUUID(),
  ): Promise<void> => {
    const now = new Date().toISOString();
    const signalled: RemoteAgentEvent = {
      agentId: 'r1',
      spawnMessageId,
      sequence,
      state,
      startedAt: now,
      progress: progress(turn),
      error: null,
      occurredAt: now,
      eventId,
    };
    await handle.signal(remoteAgentEventSignal, signalled);
  };
  return await body({ handle, seen, spawnMessageId, event });
}

const runStates = async (workflowId: string): Promise<string[]> => {
  const runs: string[] = [];
  for await (const run of env.client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    runs.push(run.status.name);
  return runs;
};
const status = (handle: Handle): Promise<FederatedAgentStatus> => handle.query(federatedAgentStatusQuery);
const named: Spoke['reply'] = (command) =>
  command.commandType === 'agent.spawn' ? ok({ agentId: 'r1', state: 'queued' }) : ok({ state: 'killing' });

describe('federatedSpawn', () => {
  it('mirrors events in sequence order, drops duplicates, and ends in the final state the spoke gives', async () => {
    const spoke: Spoke = { reply: named };
    await follow(spoke, async ({ handle, seen, event }) => {
      await eventually(() => seen.commands.length === 1);
      await event(2, 'running', 2, 'event-2');
      await event(1, 'running', 1); // older: counts as contact only
      await event(2, 'running', 2, 'event-2'); // the same event again
      await eventually(async () => (await status(handle)).progress?.turn === 2);
      const mirrored = await status(handle);
      expect(mirrored).toMatchObject({
        state: 'running',
        remoteAgentId: 'r1',
        following: 'following',
        progress: { turn: 2 },
      });
      spoke.poll = () => polled('completed');
      await event(3, 'completed', 3);
      const final = (await handle.result()) as FederatedAgentStatus;
      expect(final).toMatchObject({ state: 'completed', following: 'ended', bundle: 'stored' });
      expect(seen.states).toEqual(['running', 'completed']);
      expect(seen.commands.map((command) => command.commandType)).toEqual(['agent.spawn']);
    });
  });

  it('applies events that arrive before the spawn reply named the remote agent', async () => {
    let release = (): void => undefined;
    const beforeReply = new Promise<void>((resolve) => {
      release = resolve;
    });
    const spoke: Spoke = { reply: named, poll: () => polled('completed'), beforeReply };
    await follow(spoke, async ({ handle, seen, event }) => {
      await eventually(() => seen.commands.length === 1);
      await event(1, 'running', 1);
      await event(2, 'completed', 2);
      expect((await status(handle)).remoteAgentId).toBeNull();
      release();
      expect(await handle.result()).toMatchObject({ state: 'completed', remoteAgentId: 'r1', progress: { turn: 2 } });
      expect(seen.states).toEqual(['completed']);
    });
  });

  it('fails with the refusal the spoke signed', async () => {
    const spoke: Spoke = {
      reply: () => ({ status: 'error', error: { code: 'capacity', message: 'no room' }, result: null }),
    };
    await follow(spoke, async ({ handle, seen }) => {
      const error: unknown = await handle.result().then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect((error as WorkflowFailedError).cause?.message).toBe('spoke refused the spawn: capacity: no room');
      expect(seen.states).toEqual(['failed']);
    });
  });

  it('kill while the spawn is unanswered: agent.kill by its messageId cancels it on the spoke', async () => {
    const spoke: Spoke = {
      send: (command) => {
        if (command.commandType === 'agent.spawn') unreachable();
      },
      reply: () => ok({ spawnMessageId: 'cancelled' }),
    };
    await follow(spoke, async ({ handle, seen, spawnMessageId }) => {
      // The stub sees the spawn before the workflow has taken its failure: wait for the workflow, not the stub.
      await eventually(async () => seen.commands.length >= 1 && (await status(handle)).following === 'unreachable');
      await handle.signal(killAgentSignal, { reason: 'changed my mind' });
      const final = (await handle.result()) as FederatedAgentStatus;
      expect(final).toMatchObject({
        state: 'killed',
        error: 'spoke had not taken the spawn: it is cancelled there and will never run',
      });
      const kill = seen.commands.find((command) => command.commandType === 'agent.kill');
      expect(kill?.payload).toEqual({ spawnMessageId });
      expect(seen.failedMessages).toContain(spawnMessageId);
    });
  });

  it('kill while the spawn is unanswered, taken by the spoke after all: followed to its end', async () => {
    const spoke: Spoke = {
      send: (command) => {
        if (command.commandType === 'agent.spawn') unreachable();
      },
      reply: () => ok({ agentId: 'r1', state: 'killing' }),
      poll: () => polled('killed'),
    };
    await follow(spoke, async ({ handle }) => {
      await handle.signal(killAgentSignal, {});
      const final = (await handle.result()) as FederatedAgentStatus;
      expect(final).toMatchObject({ state: 'killed', remoteAgentId: 'r1' });
      expect(final.kill?.deliveredAt).not.toBeNull();
    });
  });

  it('kill of a running remote agent: retried while the spoke is unreachable, delivered, then confirmed', async () => {
    let refusals = 2;
    const spoke: Spoke = {
      send: (command) => {
        if (command.commandType === 'agent.kill' && refusals-- > 0) unreachable();
      },
      reply: named,
    };
    await follow(spoke, async ({ handle, seen, event }) => {
      await event(1, 'running', 1);
      await eventually(() => seen.states.includes('running'));
      await handle.signal(killAgentSignal, { reason: 'stop' });
      await eventually(() => seen.commands.filter((command) => command.commandType === 'agent.kill').length === 1);
      await eventually(() => seen.failedMessages.length >= 1);
      await eventually(
        () => seen.commands.filter((command) => command.commandType === 'agent.kill').length === 3,
        15_000,
      );
      await eventually(async () => (await status(handle)).kill?.deliveredAt != null);
      spoke.poll = () => polled('killed');
      await event(2, 'killed', 1);
      const final = (await handle.result()) as FederatedAgentStatus;
      expect(final).toMatchObject({ state: 'killed', following: 'ended', unreachableSince: null });
      expect(final.kill).toMatchObject({ reason: 'stop' });
      expect(final.kill?.deliveredAt).not.toBeNull();
    });
  });

  it('pauses while the connection is not ACTIVE and asks the spoke when it is again', async () => {
    const spoke: Spoke = { reply: named };
    await follow(spoke, async ({ handle, seen, event }) => {
      await event(1, 'running', 1);
      await eventually(() => seen.states.includes('running'));
      await handle.signal(connectionStatusSignal, { status: 'SUSPENDED' });
      await eventually(async () => (await status(handle)).following === 'paused');
      spoke.poll = () => polled('completed');
      await handle.signal(connectionStatusSignal, { status: 'ACTIVE' });
      expect(await handle.result()).toMatchObject({ state: 'completed', note: null });
    });
  });

  it('ends at its own deadline when the spoke never gives a final state, after trying to stop it', async () => {
    const spoke: Spoke = { reply: named };
    await follow(
      spoke,
      async ({ handle, seen, event }) => {
        await event(1, 'running', 1);
        const final = (await handle.result()) as FederatedAgentStatus;
        expect(final.state).toBe('timed_out');
        expect(final.error).toMatch(/^no final state from spoke within the task's timeout of 1000 ms/);
        expect(seen.commands.at(-1)).toMatchObject({ commandType: 'agent.kill', payload: { agentId: 'r1' } });
      },
      {},
      1000,
    );
  });

  it('waits past its deadline for an agent that waits for an operator, and moves the deadline by the wait', async () => {
    const spoke: Spoke = { reply: named };
    await follow(
      spoke,
      async ({ handle, seen, event }) => {
        await event(1, 'running', 1);
        spoke.poll = () => polled('input_required', false); // what the spoke answers while its agent waits
        await event(2, 'input_required', 1);
        // The deadline (1 s plus 5 s of grace) passes while the agent waits: the hub neither kills nor gives up.
        await new Promise((resolve) => setTimeout(resolve, 7_000));
        expect(seen.commands.map((command) => command.commandType)).toEqual(['agent.spawn']);
        await event(3, 'running', 2);
        spoke.poll = () => polled('completed');
        await event(4, 'completed', 2);
        const final = (await handle.result()) as FederatedAgentStatus;
        expect(final.state).toBe('completed');
        expect(final.waitedMs).toBeGreaterThan(6_000); // about the 7 s it waited, by workflow time
      },
      {},
      1000,
    );
  });

  it('continues as new before its history grows long, with the mirror carried', async () => {
    const spoke: Spoke = { reply: named };
    await follow(
      spoke,
      async ({ handle, event }) => {
        // One event at a time, each applied before the next: every one costs its own workflow task, so
        // the history passes the limit after a few of them, however the server batches signals.
        for (let sequence = 1; sequence <= 12; sequence++) {
          await event(sequence, 'running', sequence);
          await eventually(async () => (await status(handle)).progress?.turn === sequence);
        }
        spoke.poll = () => polled('completed');
        await event(13, 'completed', 13);
        const final = (await handle.result()) as FederatedAgentStatus;
        expect(final).toMatchObject({ state: 'completed', remoteAgentId: 'r1' });
        // Visibility catches up with the closed runs a moment later.
        await eventually(async () => (await runStates(handle.workflowId)).includes('CONTINUED_AS_NEW'));
      },
      { historyLimit: 25 },
    );
  });
});
