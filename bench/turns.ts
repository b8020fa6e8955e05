import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import type Docker from 'dockerode';
import { MAX_OUTPUT_TOKENS, systemPrompt } from '../model-client/request';
import { toolsFor } from '../sandbox-runtime/agent-tools';
import { AgentContextSchema, AgentOptionsSchema } from '../shared/agent-schemas';
import { bareSpec } from './bare-docker';
import { WORK } from './bench-model';
import { acceptedAgentId, spawnBody, type BenchInstance } from './harness';

/**
 * What a turn costs through the system: the time between consecutive turns an agent records (its tool call, then its
 * next model call), one agent taking `turns` quick turns.
 */
async function turnsThroughTheSystem(bench: BenchInstance, repository: string, turns: number): Promise<number[]> {
  const agentId = acceptedAgentId(
    await bench.post('/agents/spawn', spawnBody('turn-overhead', repository, WORK.turns(turns))),
  );
  await bench.instance.temporal.workflow.getHandle(agentId).result();
  const recorded = await bench.instance.prisma.agentEvent.findMany({
    where: { agentId, type: 'turn' },
    orderBy: { seq: 'asc' },
    select: { at: true },
  });
  return recorded.slice(1).map((event, index) => event.at.getTime() - (recorded[index]?.at.getTime() ?? NaN));
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
      const exitCode = await bareExec(container, (use.input as { command: string }).command);
      messages.push({ role: 'assistant', content: reply.content });
      messages.push({
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: use.id, content: `exit code ${exitCode}` }],
      });
      if (turn > 0) durations.push(performance.now() - started); // the first one warms the connection
    }
    return durations;
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
  modelUrl: string,
  turns: number,
): Promise<{ oursMs: number[]; bareMs: number[] }> {
  const oursMs = await turnsThroughTheSystem(bench, repository, turns);
  const bareMs = await bareTurns(bench.instance.docker, bench.instance.config.SANDBOX_IMAGE, bench, modelUrl, turns);
  return { oursMs, bareMs };
}
