import type Anthropic from '@anthropic-ai/sdk';
import { z } from 'zod';
import type { AgentType } from '../shared/vocabulary';
import type { ExecResult } from './containers';
import { BASH_SESSION, BASH_SESSION_FILE, TEXT_EDITOR } from './tool-scripts';

/**
 * The tools an agent may call. Where Anthropic defines a tool Claude is trained on, the agent gets
 * that one: the bash tool (a shell session kept between calls) and the text editor. Project-specific
 * tools remain only where none fits (search for read-only roles, the tester's test run), with their
 * schemas from zod. Every call becomes one command inside the sandbox, whose only writable place is
 * /workspace, so the container itself is the boundary.
 */
export const TOOL_OUTPUT_LIMIT_BYTES = 64 * 1024;
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 300;
export const MAX_COMMAND_TIMEOUT_SECONDS = 3600;
export const BASH_TOOL = 'bash';
export const EDITOR_TOOL = 'str_replace_based_edit_tool';
/** What one view shows at most: the rest is clipped with a note, within the output cap. */
export const EDITOR_MAX_CHARACTERS = 40_000;

const PathInput = z.string().min(1).max(4096);
const Timeout = z.number().int().min(1).max(MAX_COMMAND_TIMEOUT_SECONDS).optional();

/** Anthropic-defined tools: their schema is built into the model, so unknown keys are ignored rather than refused. */
const BashInput = z
  .object({ command: z.string().min(1).max(100_000).optional(), restart: z.boolean().optional() })
  .refine((input) => input.restart === true || input.command !== undefined, 'either command or restart is required');

const EditorInput = z.discriminatedUnion('command', [
  z.object({
    command: z.literal('view'),
    path: PathInput,
    view_range: z.tuple([z.number().int(), z.number().int()]).optional(),
  }),
  z.object({ command: z.literal('create'), path: PathInput, file_text: z.string().max(5_000_000) }),
  z.object({
    command: z.literal('str_replace'),
    path: PathInput,
    old_str: z.string().min(1),
    new_str: z.string().optional(),
  }),
  z
    .object({
      command: z.literal('insert'),
      path: PathInput,
      insert_line: z.number().int().min(0),
      insert_text: z.string().optional(),
      new_str: z.string().optional(),
    })
    .refine((input) => input.insert_text !== undefined || input.new_str !== undefined, 'insert_text is required'),
]);
type EditorRequest = z.infer<typeof EditorInput>;
const EDITOR_WRITES: ReadonlySet<EditorRequest['command']> = new Set(['create', 'str_replace', 'insert']);

const CUSTOM_TOOL_INPUTS = {
  search_files: z.strictObject({ pattern: z.string().min(1).max(1000), path: PathInput.optional() }),
  run_tests: z.strictObject({ command: z.string().min(1).max(10_000), timeout_seconds: Timeout }),
} as const;
type CustomToolName = keyof typeof CUSTOM_TOOL_INPUTS;

const CUSTOM_DESCRIPTIONS: Record<CustomToolName, string> = {
  search_files:
    'Search file contents with a regular expression (grep -rn), .git excluded. Paths are relative to /workspace.',
  run_tests: "Run the project's test command (cwd /workspace, no network) and report its exit code and output.",
};

export type ToolName = typeof BASH_TOOL | typeof EDITOR_TOOL | CustomToolName;

const TOOLS_BY_AGENT_TYPE: Record<AgentType, ToolName[]> = {
  worker: [BASH_TOOL, EDITOR_TOOL],
  reviewer: [EDITOR_TOOL, 'search_files'],
  tester: [EDITOR_TOOL, 'search_files', 'run_tests'],
};

/** Roles whose editor only views: they report, they do not change the repository. */
const READ_ONLY_AGENT_TYPES: ReadonlySet<AgentType> = new Set(['reviewer', 'tester']);

/** What the model is given: an Anthropic-defined tool (its type names it) or a project tool with its schema. */
export type AgentTool = Anthropic.Tool | Anthropic.ToolBash20250124 | Anthropic.ToolTextEditor20250728;

function definitionOf(name: ToolName): AgentTool {
  switch (name) {
    case BASH_TOOL:
      return { type: 'bash_20250124', name: BASH_TOOL };
    case EDITOR_TOOL:
      return { type: 'text_editor_20250728', name: EDITOR_TOOL, max_characters: EDITOR_MAX_CHARACTERS };
    default: {
      const { $schema: _ignored, ...schema } = z.toJSONSchema(CUSTOM_TOOL_INPUTS[name]) as Record<string, unknown>;
      return { name, description: CUSTOM_DESCRIPTIONS[name], input_schema: { ...schema, type: 'object' } };
    }
  }
}

export function toolsFor(agentType: AgentType): AgentTool[] {
  return TOOLS_BY_AGENT_TYPE[agentType].map(definitionOf);
}

/**
 * A one-line label of a call for the Web UI and the event stream: the tool and its main argument, never a file's
 * content.
 */
export function toolCallLabel(name: string, input: unknown): string {
  const fields = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  if (name === BASH_TOOL && fields.restart === true) return 'bash restart';
  const main = [fields.command, fields.path, fields.pattern].find(
    (value): value is string => typeof value === 'string',
  );
  if (main === undefined) return name;
  const quote = (text: string): string => {
    const firstLine = text.split('\n', 1)[0] ?? '';
    const shown = firstLine.length > 60 || text.includes('\n') ? `${firstLine.slice(0, 60)}…` : firstLine;
    return `\`${shown.replaceAll('`', "'")}\``;
  };
  if (name === EDITOR_TOOL && typeof fields.path === 'string')
    return `editor ${String(fields.command)} ${quote(fields.path)}`;
  return `${name} ${quote(main)}`;
}

export interface ToolCommand {
  command: string[];
  timeoutSeconds: number;
  /** run_tests: the exit code is the result, not an error. */
  reportsExitCode: boolean;
  /**
   * The editor: its standard output is the answer (or its standard error, an error), without the exit code around it.
   */
  plainOutput?: boolean;
  /** What the command reads on its standard input: file contents go there, not into argv, whose size is limited. */
  stdin?: Buffer;
}

/** A path that starts with "-" is a file named so, never an option. */
const asPath = (value: string): string => (value.startsWith('-') ? `./${value}` : value);

const describe = (error: z.ZodError): string =>
  error.issues.map((issue) => `${issue.path.join('.') || 'input'} ${issue.message}`).join('; ');

function parse<T>(schema: z.ZodType<T>, name: string, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new ToolInputError(`invalid input for ${name}: ${describe(parsed.error)}`);
  return parsed.data;
}

/**
 * Validates a tool call for this agent type and turns it into the command that runs it.
 * `commandTimeoutSeconds`: how long a bash command may run (the task's commandTimeout).
 */
export function toolCommand(
  agentType: AgentType,
  name: string,
  input: unknown,
  commandTimeoutSeconds = DEFAULT_COMMAND_TIMEOUT_SECONDS,
): ToolCommand {
  if (!(TOOLS_BY_AGENT_TYPE[agentType] as string[]).includes(name)) {
    throw new ToolInputError(
      `tool ${name} is not available to a ${agentType} agent; its tools are ` +
        TOOLS_BY_AGENT_TYPE[agentType].join(', '),
    );
  }
  switch (name as ToolName) {
    case BASH_TOOL: {
      const args = parse(BashInput, name, input);
      if (args.restart === true) {
        return {
          command: [
            'sh',
            '-c',
            'rm -f "$1" && echo "The bash session was restarted: working directory /workspace, a fresh environment."',
            'restart',
            BASH_SESSION_FILE,
          ],
          timeoutSeconds: 30,
          reportsExitCode: false,
        };
      }
      return {
        command: ['bash', '-c', BASH_SESSION, 'bash', args.command ?? ''],
        timeoutSeconds: commandTimeoutSeconds,
        reportsExitCode: false,
      };
    }
    case EDITOR_TOOL: {
      const args = parse(EditorInput, name, input);
      if (READ_ONLY_AGENT_TYPES.has(agentType) && EDITOR_WRITES.has(args.command)) {
        throw new ToolInputError(
          `the ${agentType}'s editor is read-only: ${args.command} is refused, only view is available`,
        );
      }
      const request = {
        ...args,
        ...(args.command === 'insert' ? { text: args.insert_text ?? args.new_str } : {}),
        max_characters: EDITOR_MAX_CHARACTERS,
      };
      return {
        command: ['python3', '-c', TEXT_EDITOR],
        stdin: Buffer.from(JSON.stringify(request), 'utf8'),
        timeoutSeconds: 60,
        reportsExitCode: false,
        plainOutput: true,
      };
    }
    case 'search_files': {
      const args = parse(CUSTOM_TOOL_INPUTS.search_files, name, input);
      return {
        command: [
          'sh',
          '-c',
          'grep -rnE --exclude-dir=.git -e "$1" -- "$2" | head -n 500',
          'search_files',
          args.pattern,
          asPath(args.path ?? '.'),
        ],
        timeoutSeconds: 60,
        reportsExitCode: false,
      };
    }
    case 'run_tests': {
      const args = parse(CUSTOM_TOOL_INPUTS.run_tests, name, input);
      return {
        command: ['sh', '-c', args.command],
        timeoutSeconds: args.timeout_seconds ?? commandTimeoutSeconds,
        reportsExitCode: true,
      };
    }
  }
}

export class ToolInputError extends Error {
  override readonly name = 'ToolInputError';
}

/**
 * What the model reads of a command: its exit code and both streams, or for a plain tool (the editor) its answer alone.
 */
export function formatToolOutput(result: ExecResult, plain: boolean): string {
  const timedOut = result.exitCode === 124 ? ' (timed out)' : '';
  const parts = plain
    ? [
        result.exitCode === 0
          ? result.stdout
          : result.stderr || `the tool failed with exit code ${result.exitCode}${timedOut}`,
      ]
    : [
        `exit code ${result.exitCode}${timedOut}`,
        ...(result.stdout ? [result.stdout] : []),
        ...(result.stderr ? [`stderr:\n${result.stderr}`] : []),
      ];
  if (result.outputTruncated) parts.push(`[output truncated to ${TOOL_OUTPUT_LIMIT_BYTES} bytes per stream]`);
  return parts.join('\n');
}
