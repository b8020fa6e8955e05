#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ApiRequestError, OrchestratorClient, type AgentView } from '../client/api-client';
import type { AgentEventView } from '../shared/agent-events';
import { AGENT_TYPES, type AgentType } from '../shared/vocabulary';
import { describeEvent, progressLine, turnUsage } from './format';

/**
 * The orchestrator's command line, on the typed client. Human output by default, --json for scripts.
 * Exit codes (documented in the README): 0 done (watch: the run completed), 1 the API refused or
 * failed, 2 usage error, 3 the run failed or timed out, 4 the run was killed, 5 the API is unreachable.
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, runFailed: 3, runKilled: 4, unreachable: 5 } as const;

const USAGE = `orchestrator <command> [options]

Commands:
  spawn --task <id> --repo <repository> [--branch main] --item <work item>...
        [--type worker|reviewer|tester] [--priority 1-10] [--watch]
  status <agentId>             state, turn, tokens, last tool, result
  watch <agentId>              follow a run live until it ends (exit code: how it ended)
  kill <agentId>               stop a run; its sandbox is removed within seconds
  list [--state <state>] [--limit N]
  logs <agentId>               the run's log so far: turns, tool calls with exit codes, result
  connections                  this workspace's federation connections
  token --workspace <name> | --admin   create an API token (on the instance's host: needs its database)

Options:
  --url <url>      the API (default $ORCHESTRATOR_URL or http://127.0.0.1:3000)
  --token <token>  a workspace token (default $ORCHESTRATOR_TOKEN)
  --json           machine-readable output
  -h, --help       this help

Exit codes: 0 ok (watch: completed), 1 refused by the API, 2 usage, 3 run failed or timed out,
            4 run killed, 5 API unreachable.`;

class UsageError extends Error {}

interface Output {
  write(text: string): void;
  error(text: string): void;
}

const terminalExit = (state: string): number =>
  state === 'completed' ? EXIT.ok : state === 'killed' ? EXIT.runKilled : EXIT.runFailed;

function statusLines(agent: AgentView): string[] {
  const lines = [
    `${agent.agentId}  ${agent.state}`,
    `  task ${agent.taskId} · ${agent.agentType} · turn ${agent.turn} · ` +
      turnUsage({ ...agent.usage, costUsd: agent.costUsd }) +
      (agent.lastTool ? ` · last tool ${agent.lastTool}` : ''),
  ];
  if (agent.modelProgress)
    lines.push(
      `  model writing: ` +
        `${agent.modelProgress.tool ? `${agent.modelProgress.tool} input, ` : ''}${agent.modelProgress.textLength} ` +
        `characters of text`,
    );
  if (agent.contextManagement)
    lines.push(
      `  context: older tool results cleared ` +
        `${agent.contextManagement.clearings}× (last at turn ` +
        `${agent.contextManagement.lastClearedAtTurn})`,
    );
  if (agent.error) lines.push(`  error: ${agent.error}`);
  if (agent.result) lines.push(`  result: ${agent.result.commitSha ?? 'no changes'} on ${agent.result.branch ?? '?'}`);
  return lines;
}

async function watch(client: OrchestratorClient, agentId: string, out: Output, json: boolean): Promise<number> {
  let final = 'running';
  let last: AgentEventView | null = null;
  for await (const event of client.agentEvents(agentId)) {
    last = event;
    out.write(json ? JSON.stringify(event) : describeEvent(event));
    if (event.data.type === 'state') final = event.data.state;
  }
  if (!last) final = (await client.agentStatus(agentId)).state;
  if (!json) out.write(progressLine(final));
  return terminalExit(final);
}

export async function run(argv: string[], out: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      task: { type: 'string' },
      repo: { type: 'string' },
      branch: { type: 'string' },
      item: { type: 'string', multiple: true },
      type: { type: 'string' },
      priority: { type: 'string' },
      watch: { type: 'boolean' },
      state: { type: 'string' },
      limit: { type: 'string' },
      workspace: { type: 'string' },
      admin: { type: 'boolean' },
    },
  });
  const [command, target] = positionals;
  if (values.help || !command) {
    out.write(USAGE);
    return command || values.help ? EXIT.ok : EXIT.usage;
  }
  const client = new OrchestratorClient({
    baseUrl: values.url ?? env.ORCHESTRATOR_URL ?? 'http://127.0.0.1:3000',
    ...((values.token ?? env.ORCHESTRATOR_TOKEN) ? { token: values.token ?? env.ORCHESTRATOR_TOKEN } : {}),
  });
  const needAgent = (): string => {
    if (!target) throw new UsageError(`${command} needs an agent id: orchestrator ${command} <agentId>`);
    return target;
  };
  const json = values.json === true;
  const print = (value: unknown, human: () => string[]): void => {
    if (json) out.write(JSON.stringify(value));
    else for (const line of human()) out.write(line);
  };

  switch (command) {
    case 'spawn': {
      if (!values.task || !values.repo || !values.item?.length)
        throw new UsageError('spawn needs --task <id>, --repo <repository> and at least one --item <work item>');
      const agentType = (values.type ?? 'worker') as AgentType;
      if (!AGENT_TYPES.includes(agentType)) throw new UsageError(`--type must be one of ${AGENT_TYPES.join(', ')}`);
      const spawned = await client.spawnAgent({
        taskId: values.task,
        agentType,
        context: { repository: values.repo, branch: values.branch ?? 'main', workItems: values.item },
        ...(values.priority ? { priority: Number(values.priority) } : {}),
      });
      print(spawned, () => [
        `${spawned.agentId}  ${spawned.status}${spawned.existing ? ' (the live agent of this task)' : ''}`,
      ]);
      return values.watch ? await watch(client, spawned.agentId, out, json) : EXIT.ok;
    }
    case 'status': {
      const agent = await client.agentStatus(needAgent());
      print(agent, () => statusLines(agent));
      return EXIT.ok;
    }
    case 'watch':
      return await watch(client, needAgent(), out, json);
    case 'kill': {
      const killed = await client.killAgent(needAgent());
      print(killed, () => [`${killed.agentId}  killing`]);
      return EXIT.ok;
    }
    case 'list': {
      const page = await client.listAgents({
        ...(values.state ? { state: values.state as AgentView['state'] } : {}),
        ...(values.limit ? { limit: Number(values.limit) } : {}),
      });
      print(page, () =>
        page.agents.length === 0
          ? ['no agents']
          : page.agents.map(
              (agent) => `${agent.agentId}  ${agent.state.padEnd(9)}  ${agent.agentType.padEnd(8)}  ${agent.taskId}`,
            ),
      );
      return EXIT.ok;
    }
    case 'logs': {
      const events = await client.eventsSoFar(needAgent());
      print(events, () => events.map(describeEvent));
      return EXIT.ok;
    }
    case 'connections': {
      const { connections } = await client.connections();
      print(connections, () =>
        connections.length === 0
          ? ['no connections']
          : connections.map(
              (connection) =>
                `${String(connection.id)}  ${String(connection.status)}  ` +
                `${String(connection.peerName)}  ${String(connection.peerUrl)}`,
            ),
      );
      return EXIT.ok;
    }
    case 'token': {
      if (Boolean(values.workspace) === Boolean(values.admin))
        throw new UsageError('token needs --workspace <name> or --admin');
      const { createToken } = await import('./token');
      const issued = await createToken(values.admin ? { admin: true } : { workspace: values.workspace ?? '' });
      print(issued, () => [issued.token]);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command "${command}" (orchestrator --help lists them)`);
  }
}

/** Runs the CLI and maps failures to a one-line message and the documented exit code. */
export async function main(argv: string[], out: Output): Promise<number> {
  try {
    return await run(argv, out);
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      out.error(`orchestrator: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof ApiRequestError) {
      out.error(`orchestrator: ${error.message} (${error.status} ${error.code})`);
      return EXIT.refused;
    }
    out.error(
      `orchestrator: the API did not answer: ` +
        (error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)),
    );
    return EXIT.unreachable;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), {
    write: (text) => process.stdout.write(`${text}\n`),
    error: (text) => process.stderr.write(`${text}\n`),
  }).then((code) => {
    process.exitCode = code;
  });
}
