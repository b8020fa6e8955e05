import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { tsToMs } from '@temporalio/common/lib/time';
import type Docker from 'dockerode';
import { MAX_OUTPUT_TOKENS, systemPrompt } from '../model-client/request';
import type { FakeAnthropic } from '../scripts/scripted-model-server';
import { toolsFor } from '../sandbox-runtime/agent-tools';
import { AgentContextSchema, AgentOptionsSchema } from '../shared/agent-schemas';
import { bareSpec } from './bare-docker';
import { WORK } from './bench-model';
import { acceptedAgentId, spawnBody, type BenchInstance } from './harness';

/** The steps of a turn through the system, in order: each phase ends at its step; together they are the turn. */
export const TURN_PHASES = [
  'model call: reply stored → activity completed',
  'workflow task: reply → tool call scheduled',
  'tool call: scheduled → claimed on the host (dispatch, reads)',
  'tool call: claimed → command done (Docker checks, detached exec)',
  'tool call: command done → activity completed (its write)',
  'workflow task: tool result → next model call scheduled',
  'model call: scheduled → request at the Messages API',
  'model call: the Messages API answers (streamed)',
  'model call: answer → reply stored (one transaction)',
] as const;

/** The bare loop's two steps, for the same table. */
export const BARE_TURN_PHASES = ['bare: the Messages API request', 'bare: docker exec'] as const;

type TurnProfile = Record<(typeof TURN_PHASES)[number], number>;
type BareTurnProfile = Record<(typeof BARE_TURN_PHASES)[number], number>;

/**
 * Where each turn's time went, from Temporal's event times, the tool calls' claimed and finished times, the local
 * Messages API's own request times and the recorded turn events (all on this machine's clock).
 */
async function turnProfiles(
  bench: BenchInstance,
  model: FakeAnthropic,
  agentId: string,
  workItem: string,
  turnAt: number[],
): Promise<TurnProfile[]> {
  const history = (await bench.instance.temporal.workflow.getHandle(agentId).fetchHistory()).events ?? [];
  const completedAt = new Map<number, number>();
  for (const event of history) {
    const scheduledId = event.activityTaskCompletedEventAttributes?.scheduledEventId?.toNumber();
    if (scheduledId !== undefined) completedAt.set(scheduledId, tsToMs(event.eventTime));
  }
  const activities = (name: string) =>
    history
      .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === name)
      .map((event) => ({
        scheduled: tsToMs(event.eventTime),
        completed: completedAt.get(event.eventId?.toNumber() ?? -1) ?? NaN,
      }));
  const modelCalls = activities('callModel');
  const toolCalls = activities('runTool');
  const claimed = await bench.instance.prisma.toolCall.findMany({
    where: { agentId },
    orderBy: { startedAt: 'asc' },
    select: { startedAt: true, finishedAt: true },
  });
  const requests = new Map(model.requestsOf(workItem).map((request) => [request.turn, request])); // the last per turn
  return turnAt.slice(0, -1).map((at, turn) => {
    const next = turn + 1;
    const steps = [
      at,
      modelCalls[turn]?.completed,
      toolCalls[turn]?.scheduled,
      claimed[turn]?.startedAt?.getTime(),
      claimed[turn]?.finishedAt?.getTime(),
      toolCalls[turn]?.completed,
      modelCalls[next]?.scheduled,
      requests.get(next)?.receivedAt,
      requests.get(next)?.answeredAt,
      turnAt[next],
    ].map((step) => step ?? NaN);
    return Object.fromEntries(
      TURN_PHASES.map((phase, index) => [phase, (steps[index + 1] ?? NaN) - (steps[index] ?? NaN)]),
    ) as TurnProfile;
  });
}

/**
 * What a turn costs through the system: the time between consecutive turns an agent records (its tool call, then its
 * next model call), one agent taking `turns` quick turns; and where each turn's time went.
 */
async function turnsThroughTheSystem(
  bench: BenchInstance,
  model: FakeAnthropic,
  repository: string,
  turns: number,
): Promise<{ durations: number[]; profiles: TurnProfile[] }> {
  const workItem = WORK.turns(turns);
  const agentId = acceptedAgentId(await bench.post('/agents/spawn', spawnBody('turn-overhead', repository, workItem)));
  await bench.instance.temporal.workflow.getHandle(agentId).result();
  const recorded = await bench.instance.prisma.agentEvent.findMany({
    where: { agentId, type: 'turn' },
    orderBy: { seq: 'asc' },
    select: { at: true },
  });
  const turnAt = recorded.map((event) => event.at.getTime());
  const durations = turnAt.slice(1).map((at, index) => at - (turnAt[index] ?? NaN));
  return { durations, profiles: await turnProfiles(bench, model, agentId, workItem, turnAt) };
}

/** One `docker exec` of the tool's command, as plainly as the engine's API allows: create, start, read, inspect. */
async function bareExec(container: Docker.Container, command: string): Promise<number> {
  const exec = await container.exec({ Cmd: ['bash', '-c', command], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
  return (await exec.inspect()).ExitCode ?? -1;
}

/**
 * The baseline: a bare agent loop in this process doing what a turn does, without the system: the same streamed
 * request to the same Messages API (system prompt, tools, the growing conversation), and the tool's command through a
 * plain `docker exec` in a container with the same hardened options.
 */
async function bareTurns(docker: Docker, image: string, bench: BenchInstance, modelUrl: string, turns: number) {
  const client = new Anthropic({ apiKey: 'bench', baseURL: modelUrl, maxRetries: 0 });
  const context = AgentContextSchema.parse({ repository: '/bench', branch: 'main', workItems: [WORK.turns(turns)] });
  const model = AgentOptionsSchema.parse({}).model;
  const workspace = await mkdtemp(path.join(os.tmpdir(), 'bench-turns-'));
  const name = `bench-bare-turns-${Date.now()}`;
  const container = await docker.createContainer(
    bareSpec(name, image, bench.instance.config.SANDBOX_RUNTIME, workspace),
  );
  try {
    await container.start();
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: WORK.turns(turns) }];
    const durations: number[] = [];
    const profiles: BareTurnProfile[] = [];
    for (let turn = 0; turn < turns; turn++) {
      const started = performance.now();
      const reply = await client.messages
        .stream({
          model,
          max_tokens: MAX_OUTPUT_TOKENS,
          system: systemPrompt('worker', context),
          tools: toolsFor('worker'),
          messages,
        })
        .finalMessage();
      const use = reply.content.find((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
      if (!use) break;
      const answered = performance.now();
      const exitCode = await bareExec(container, (use.input as { command: string }).command);
      if (turn > 0)
        profiles.push({
          'bare: the Messages API request': answered - started,
          'bare: docker exec': performance.now() - answered,
        });
      messages.push({ role: 'assistant', content: reply.content });
      messages.push({
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: use.id, content: `exit code ${exitCode}` }],
      });
      if (turn > 0) durations.push(performance.now() - started); // the first one warms the connection
    }
    return { durations, profiles };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
    await rm(workspace, { recursive: true, force: true });
  }
}

/**
 * Turn overhead: a turn (a model call to the local Messages API and one tool call in the sandbox) through the system,
 * against the bare loop doing the same request and the same exec, measured in the same run.
 */
export async function turnOverhead(
  bench: BenchInstance,
  repository: string,
  model: FakeAnthropic,
  turns: number,
): Promise<{ oursMs: number[]; bareMs: number[]; profiles: TurnProfile[]; bareProfiles: BareTurnProfile[] }> {
  const ours = await turnsThroughTheSystem(bench, model, repository, turns);
  const bare = await bareTurns(bench.instance.docker, bench.instance.config.SANDBOX_IMAGE, bench, model.url, turns);
  return { oursMs: ours.durations, bareMs: bare.durations, profiles: ours.profiles, bareProfiles: bare.profiles };
}
