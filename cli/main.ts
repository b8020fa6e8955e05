#!/usr/bin/env node
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { ApiRequestError, OrchestratorClient, type AgentView } from '../client/api-client';
import type { AgentEventView } from '../shared/agent-events';
import { AGENT_TYPES, type AgentType } from '../shared/vocabulary';
import { describeEvent, progressLine, turnUsage } from './format';

/**
 * The orchestrator's command line, on the typed client. Human output by default, --json for scripts.
 * Exit codes (documented in the README): 0 done (watch: the run completed), 1 the API refused or
 * failed, 2 usage error, 3 the run failed or timed out, 4 the run was killed, 5 the API is unreachable, 6 git could
 * not fetch the result (fetch).
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, runFailed: 3, runKilled: 4, unreachable: 5, gitFailed: 6 } as const;

const USAGE = `orchestrator <command> [options]

Commands:
  spawn --task <id> --repo <repository> [--branch main] --item <work item>...
        [--type worker|reviewer|tester] [--priority 1-10] [--push [--push-to <remote>] [--push-branch <b>]]
        [--gate <pattern>]... [--watch]   --push: the worker pushes the result with the operator's credentials
                               --gate: bash commands matching the pattern wait for approve/deny
  status <agentId>             state, turn, tokens, last tool, result
  watch <agentId>              follow a run live until it ends (exit code: how it ended)
  kill <agentId>               stop a run; its sandbox is removed within seconds
  say <agentId> <message>      tell a running agent something: the model reads it at its next turn
  approve <agentId> [<toolCallId>] [--note <text>]   let the tool call that waits for approval run
  deny <agentId> [<toolCallId>] [--note <text>]      refuse it: the model gets the note as the call's result
                               (without <toolCallId>: the call the agent waits on now)
  pause <agentId> | resume <agentId>   hold a run at its next step (sandbox paused), or let it go on
  continue <agentId> <instructions> [--watch]   a follow-up of a finished agent, on its result
  list [--state <state>] [--limit N]
  logs <agentId>               the run's log so far: turns, tool calls with exit codes, result
  fetch <agentId> [--dir <repository>]   bring the result into a clone of the task's repository (default:
                               the current folder), as the branch agent/<agentId>
  connections                  this workspace's federation connections
  token --workspace <name> | --admin   create an API token (on the instance's host: needs its database)

Options:
  --url <url>      the API (default $ORCHESTRATOR_URL or http://127.0.0.1:3000)
  --token <token>  a workspace token (default $ORCHESTRATOR_TOKEN)
  --json           machine-readable output
  -h, --help       this help

Exit codes: 0 ok (watch: completed), 1 refused by the API, 2 usage, 3 run failed or timed out,
            4 run killed, 5 API unreachable, 6 git could not fetch the result.`;

class UsageError extends Error {}
/** git refused the fetched result (not a clone of the task's repository, or not a repository at all). */
class FetchFailed extends Error {}

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
  const waiting = agent.pendingApproval;
  if (waiting)
    lines.push(
      `  waits for approval: ${waiting.label} (tool call ${waiting.toolCallId}` +
        (waiting.expiresAt
          ? `; ${waiting.onTimeout === 'approve' ? 'approved' : 'denied'} at ${waiting.expiresAt})`
          : ')'),
      `    orchestrator approve ${agent.agentId}   or   orchestrator deny ${agent.agentId} --note "<why>"`,
    );
  if (agent.pauseRequested && agent.state !== 'paused') lines.push('  pausing at its next step');
  if (agent.parentAgentId) lines.push(`  continues ${agent.parentAgentId}`);
  if (agent.followUps?.length) lines.push(`  continued by ${agent.followUps.join(', ')}`);
  if (agent.error) lines.push(`  error: ${agent.error}`);
  if (agent.result) lines.push(`  result: ${agent.result.commitSha ?? 'no changes'} on ${agent.result.branch ?? '?'}`);
  return lines;
}

/**
 * Fetches the agent's result bundle into the git repository at `dir` as the branch agent/<agentId> (the user's own
 * repository, with their own git): the bundle needs the base commit there, as a clone of the task's repository has.
 */
async function fetchResult(
  client: OrchestratorClient,
  agentId: string,
  dir: string,
): Promise<{ branch: string; commitSha: string }> {
  const bundle = await client.resultBundle(agentId);
  const folder = await mkdtemp(path.join(os.tmpdir(), 'orchestrator-fetch-'));
  const file = path.join(folder, `${agentId}.bundle`);
  const branch = `agent/${agentId}`;
  try {
    await writeFile(file, bundle.data);
    await promisify(execFile)('git', ['-C', dir, 'fetch', '--quiet', '--', file, `+${branch}:refs/heads/${branch}`]);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new FetchFailed(`git could not fetch the result here: ${stderr || String(error)}`);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  return { branch, commitSha: bundle.commitSha };
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
      push: { type: 'boolean' },
      'push-to': { type: 'string' },
      'push-branch': { type: 'string' },
      dir: { type: 'string' },
      state: { type: 'string' },
      limit: { type: 'string' },
      workspace: { type: 'string' },
      admin: { type: 'boolean' },
      note: { type: 'string' },
      gate: { type: 'string', multiple: true },
    },
  });
  const [command, target, ...rest] = positionals;
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
        options: {
          ...(values.push
            ? {
                delivery: {
                  push: true,
                  ...(values['push-to'] ? { remote: values['push-to'] } : {}),
                  ...(values['push-branch'] ? { branch: values['push-branch'] } : {}),
                },
              }
            : {}),
          ...(values.gate?.length ? { approvals: values.gate.map((match) => ({ tool: 'bash' as const, match })) } : {}),
        },
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
    case 'say': {
      const agentId = needAgent();
      if (rest.length === 0) throw new UsageError('say needs a message: orchestrator say <agentId> "<message>"');
      const said = await client.sendMessage(agentId, rest.join(' '));
      print(said, () => [`${agentId}  message ${said.position} taken: the model reads it at its next turn`]);
      return EXIT.ok;
    }
    case 'approve':
    case 'deny': {
      const agentId = needAgent();
      const toolCallId = rest[0] ?? (await client.agentStatus(agentId)).pendingApproval?.toolCallId;
      if (!toolCallId) throw new UsageError(`${agentId} waits for no approval now (orchestrator status ${agentId})`);
      const decided = await client.decideApproval(agentId, toolCallId, {
        decision: command,
        ...(values.note ? { note: values.note } : {}),
      });
      print(decided, () => [`${agentId}  ${toolCallId}  ${command === 'approve' ? 'approved' : 'denied'}`]);
      return EXIT.ok;
    }
    case 'pause':
    case 'resume': {
      const agentId = needAgent();
      const answer = await (command === 'pause' ? client.pauseAgent(agentId) : client.resumeAgent(agentId));
      print(answer, () => [
        `${agentId}  ${answer.state}` +
          (command === 'pause' && answer.state !== 'paused' ? ' (pauses at its next step)' : ''),
      ]);
      return EXIT.ok;
    }
    case 'continue': {
      const agentId = needAgent();
      if (rest.length === 0)
        throw new UsageError('continue needs instructions: orchestrator continue <agentId> "<what to do next>"');
      const followUp = await client.continueAgent(agentId, { instructions: rest.join(' ') });
      print(followUp, () => [`${followUp.agentId}  ${followUp.status}  (continues ${agentId})`]);
      return values.watch ? await watch(client, followUp.agentId, out, json) : EXIT.ok;
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
    case 'fetch': {
      const agentId = needAgent();
      // npm run starts the CLI in the project's folder: INIT_CWD is where it was asked from.
      const fetched = await fetchResult(client, agentId, values.dir ?? env.INIT_CWD ?? process.cwd());
      print(fetched, () => [`${fetched.branch}  ${fetched.commitSha}`]);
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
    if (error instanceof FetchFailed) {
      out.error(`orchestrator: ${error.message}`);
      return EXIT.gitFailed;
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
