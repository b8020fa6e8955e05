import { z } from 'zod';
import type { AgentType } from '../shared/agents';

/**
 * The tools an agent may call, as the model sees them (name, description, JSON schema) and as they
 * run: each becomes one command inside the sandbox. Paths are resolved inside the container, whose
 * only writable place is /workspace, so the container itself is the boundary.
 */
export const TOOL_OUTPUT_LIMIT_BYTES = 64 * 1024;
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 120;
export const MAX_COMMAND_TIMEOUT_SECONDS = 900;

const PathInput = z.string().min(1).max(4096);
const Timeout = z.number().int().min(1).max(MAX_COMMAND_TIMEOUT_SECONDS).optional();

const TOOL_INPUTS = {
  run_shell: z.strictObject({ command: z.string().min(1).max(100_000), timeout_seconds: Timeout }),
  read_file: z.strictObject({ path: PathInput }),
  write_file: z.strictObject({ path: PathInput, content: z.string().max(5_000_000) }),
  edit_file: z.strictObject({ path: PathInput, old_text: z.string().min(1), new_text: z.string() }),
  list_files: z.strictObject({ path: PathInput.optional() }),
  search_files: z.strictObject({ pattern: z.string().min(1).max(1000), path: PathInput.optional() }),
  run_tests: z.strictObject({ command: z.string().min(1).max(10_000), timeout_seconds: Timeout }),
} as const;

export type ToolName = keyof typeof TOOL_INPUTS;

const DESCRIPTIONS: Record<ToolName, string> = {
  run_shell: 'Run a shell command in the repository (cwd /workspace). No network. Output is capped.',
  read_file: 'Read a text file (up to 200 KB).',
  write_file: 'Create or overwrite a file with the given content; parent folders are created.',
  edit_file: 'Replace the single occurrence of old_text in a file with new_text.',
  list_files: 'List files and folders (3 levels deep, .git excluded).',
  search_files: 'Search file contents with a regular expression (grep -rn), .git excluded.',
  run_tests: "Run the project's test command and report its exit code and output.",
};

const TOOLS_BY_AGENT_TYPE: Record<AgentType, ToolName[]> = {
  worker: ['run_shell', 'read_file', 'write_file', 'edit_file', 'list_files', 'search_files'],
  reviewer: ['read_file', 'list_files', 'search_files'],
  tester: ['read_file', 'list_files', 'search_files', 'run_tests'],
};

export interface ToolDefinition {
  name: ToolName;
  description: string;
  input_schema: { type: 'object'; [key: string]: unknown };
}

export function toolsFor(agentType: AgentType): ToolDefinition[] {
  return TOOLS_BY_AGENT_TYPE[agentType].map((name) => {
    const { $schema: _ignored, ...schema } = z.toJSONSchema(TOOL_INPUTS[name]) as Record<string, unknown>;
    return { name, description: DESCRIPTIONS[name], input_schema: { ...schema, type: 'object' } };
  });
}

/** A one-line label of a call for the Web UI: the tool and its main argument, never a file's content. */
export function toolCallLabel(name: string, input: unknown): string {
  const fields = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const main = [fields.command, fields.path, fields.pattern].find((value): value is string => typeof value === 'string');
  if (main === undefined) return name;
  const firstLine = main.split('\n', 1)[0] ?? '';
  const shown = firstLine.length > 60 || main.includes('\n') ? `${firstLine.slice(0, 60)}…` : firstLine;
  return `${name} \`${shown.replaceAll('`', "'")}\``;
}

export interface ToolCommand {
  command: string[];
  timeoutSeconds: number;
  /** run_tests: the exit code is the result, not an error. */
  reportsExitCode: boolean;
  /** What the command reads on its standard input: file contents go there, not into argv, whose size is limited. */
  stdin?: Buffer;
}

// Small Python programs take the path through argv and the contents on stdin, never through string interpolation.
const WRITE_FILE = `import os, sys
path = sys.argv[1]
os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
with open(path, 'wb') as f:
    f.write(sys.stdin.buffer.read())
print('wrote %d bytes to %s' % (os.path.getsize(path), path))`;

const EDIT_FILE = `import json, sys
path = sys.argv[1]
change = json.load(sys.stdin)
old, new = change['old'], change['new']
text = open(path, encoding='utf-8').read()
count = text.count(old)
if count != 1:
    sys.exit('old_text occurs %d times in %s; it must occur exactly once' % (count, path))
open(path, 'w', encoding='utf-8').write(text.replace(old, new, 1))
print('edited %s' % path)`;

/** A path that starts with "-" is a file named so, never an option. */
const asPath = (value: string): string => (value.startsWith('-') ? `./${value}` : value);

/** Validates a tool call for this agent type and turns it into the command that runs it. */
export function toolCommand(agentType: AgentType, name: string, input: unknown): ToolCommand {
  if (!(TOOLS_BY_AGENT_TYPE[agentType] as string[]).includes(name)) {
    throw new ToolInputError(`tool ${name} is not available to a ${agentType} agent`);
  }
  const toolName = name as ToolName;
  const parsed = TOOL_INPUTS[toolName].safeParse(input);
  if (!parsed.success) throw new ToolInputError(`invalid input for ${name}: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || 'input'} ${issue.message}`).join('; ')}`);
  const args = parsed.data as Record<string, unknown>;
  const str = (key: string): string => String(args[key]);
  const pathArg = (key: string, fallback = '.'): string => asPath(args[key] === undefined ? fallback : str(key));
  const timeout = typeof args.timeout_seconds === 'number' ? args.timeout_seconds : DEFAULT_COMMAND_TIMEOUT_SECONDS;
  switch (toolName) {
    case 'run_shell':
      return { command: ['sh', '-c', str('command')], timeoutSeconds: timeout, reportsExitCode: false };
    case 'run_tests':
      return { command: ['sh', '-c', str('command')], timeoutSeconds: timeout, reportsExitCode: true };
    case 'read_file':
      return { command: ['sh', '-c', 'head -c 200000 -- "$1"', 'read_file', pathArg('path')], timeoutSeconds: 30, reportsExitCode: false };
    case 'write_file':
      return { command: ['python3', '-c', WRITE_FILE, pathArg('path')], stdin: Buffer.from(str('content'), 'utf8'), timeoutSeconds: 60, reportsExitCode: false };
    case 'edit_file':
      return {
        command: ['python3', '-c', EDIT_FILE, pathArg('path')],
        stdin: Buffer.from(JSON.stringify({ old: str('old_text'), new: str('new_text') }), 'utf8'),
        timeoutSeconds: 60,
        reportsExitCode: false,
      };
    case 'list_files':
      return {
        command: ['sh', '-c', `find "$1" -maxdepth 3 -not -path '*/.git/*' -not -name .git | sort | head -n 2000`, 'list_files', pathArg('path')],
        timeoutSeconds: 30,
        reportsExitCode: false,
      };
    case 'search_files':
      return {
        command: ['sh', '-c', 'grep -rnE --exclude-dir=.git -e "$1" -- "$2" | head -n 500', 'search_files', str('pattern'), pathArg('path')],
        timeoutSeconds: 60,
        reportsExitCode: false,
      };
  }
}

export class ToolInputError extends Error {
  override readonly name = 'ToolInputError';
}
