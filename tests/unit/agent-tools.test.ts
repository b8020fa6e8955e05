import {
  BASH_TOOL,
  EDITOR_MAX_CHARACTERS,
  EDITOR_TOOL,
  formatToolOutput,
  TOOL_OUTPUT_LIMIT_BYTES,
  toolCallLabel,
  toolCommand,
  ToolInputError,
  toolsFor,
} from '../../sandbox-runtime/agent-tools';
import { BASH_SESSION_FILE } from '../../sandbox-runtime/tool-scripts';

/** Which tools each role gets, and how a call becomes a command in the sandbox (pure: no sandbox here). */
describe('agent tools', () => {
  it(
    'gives a worker the Anthropic-defined bash tool and text editor, and ' +
      'read-only roles the editor plus project tools',
    () => {
      expect(toolsFor('worker')).toEqual([
        { type: 'bash_20250124', name: BASH_TOOL },
        { type: 'text_editor_20250728', name: EDITOR_TOOL, max_characters: EDITOR_MAX_CHARACTERS },
      ]);
      expect(toolsFor('reviewer').map((tool) => tool.name)).toEqual([EDITOR_TOOL, 'search_files']);
      expect(toolsFor('tester').map((tool) => tool.name)).toEqual([EDITOR_TOOL, 'search_files', 'run_tests']);
      // Project-specific tools carry their JSON schema from zod.
      const runTests = toolsFor('tester').find((tool) => tool.name === 'run_tests') as {
        input_schema: { properties: Record<string, unknown>; required: string[] };
      };
      expect(Object.keys(runTests.input_schema.properties)).toEqual(['command', 'timeout_seconds']);
      expect(runTests.input_schema.required).toEqual(['command']);
    },
  );

  it('runs a bash command in the session program with the task’s timeout, and a restart clears the session', () => {
    const run = toolCommand('worker', BASH_TOOL, { command: 'cd src && export A=1' }, 42);
    expect(run.command.slice(0, 2)).toEqual(['bash', '-c']);
    expect(run.command.at(-1)).toBe('cd src && export A=1');
    expect(run.timeoutSeconds).toBe(42);
    const restart = toolCommand('worker', BASH_TOOL, { restart: true });
    expect(restart.command).toContain(BASH_SESSION_FILE);
    expect(restart.command.join(' ')).toContain('rm -f');
  });

  it('sends the editor its request as JSON on stdin, never through argv or a shell', () => {
    const create = toolCommand('worker', EDITOR_TOOL, {
      command: 'create',
      path: '$(reboot).txt',
      file_text: "'; rm -rf / #",
    });
    expect(create.command.slice(0, 2)).toEqual(['python3', '-c']);
    expect(create.command.join(' ')).not.toContain('reboot');
    expect(JSON.parse(create.stdin?.toString('utf8') ?? '{}')).toMatchObject({
      command: 'create',
      path: '$(reboot).txt',
      file_text: "'; rm -rf / #",
    });
    expect(create.plainOutput).toBe(true);
    // insert takes insert_text (or new_str, as older editor versions named it).
    expect(
      JSON.parse(
        toolCommand('worker', EDITOR_TOOL, {
          command: 'insert',
          path: 'a',
          insert_line: 0,
          new_str: 'x',
        }).stdin?.toString('utf8') ?? '{}',
      ),
    ).toMatchObject({ text: 'x' });
  });

  it('refuses what a role may not do and malformed input with a tool error the model reads', () => {
    const refusal = (type: 'worker' | 'reviewer' | 'tester', name: string, input: unknown): string => {
      try {
        toolCommand(type, name, input);
      } catch (error) {
        if (error instanceof ToolInputError) return error.message;
        throw error;
      }
      throw new Error('not refused');
    };
    // The valid twin: a reviewer may view.
    expect(toolCommand('reviewer', EDITOR_TOOL, { command: 'view', path: 'app.py' }).plainOutput).toBe(true);
    for (const command of ['create', 'str_replace', 'insert']) {
      const input = {
        command,
        path: 'a.txt',
        file_text: 'x',
        old_str: 'a',
        new_str: 'b',
        insert_line: 0,
        insert_text: 'x',
      };
      expect(refusal('reviewer', EDITOR_TOOL, input)).toBe(
        `the reviewer's editor is read-only: ${command} is refused, only view is available`,
      );
      expect(refusal('tester', EDITOR_TOOL, input)).toContain("the tester's editor is read-only");
    }
    expect(refusal('reviewer', BASH_TOOL, { command: 'rm -rf .' })).toBe(
      'tool bash is not available to a reviewer agent; its tools are str_replace_based_edit_tool, search_files',
    );
    expect(refusal('worker', 'run_shell', { command: 'ls' })).toContain(
      'tool run_shell is not available to a worker agent',
    );
    expect(refusal('worker', BASH_TOOL, {})).toContain('either command or restart is required');
    expect(refusal('worker', EDITOR_TOOL, { command: 'undo_edit', path: 'a' })).toContain(
      'invalid input for str_replace_based_edit_tool',
    );
    expect(
      refusal('worker', EDITOR_TOOL, { command: 'insert', path: 'a', insert_line: -1, insert_text: 'x' }),
    ).toContain('insert_line');
    expect(refusal('tester', 'run_tests', { command: 'npm test', extra: true })).toContain(
      'invalid input for run_tests',
    );
  });

  it('labels calls with the tool and its main argument, never a file’s content', () => {
    expect(toolCallLabel(BASH_TOOL, { command: 'npm test\nnpm run lint' })).toBe('bash `npm test…`');
    expect(toolCallLabel(BASH_TOOL, { restart: true })).toBe('bash restart');
    expect(toolCallLabel(EDITOR_TOOL, { command: 'create', path: 'src/a.ts', file_text: 'SECRET CONTENT' })).toBe(
      'editor create `src/a.ts`',
    );
    expect(toolCallLabel('search_files', { pattern: 'TODO' })).toBe('search_files `TODO`');
  });
});

/** What the model reads of a finished command. */
describe('tool output', () => {
  const run = (exitCode: number, stdout = '', stderr = '', outputTruncated = false) => ({
    exitCode,
    stdout,
    stderr,
    outputTruncated,
  });

  it('shows a command its exit code and both streams', () => {
    expect(formatToolOutput(run(1, 'out', 'err'), false)).toBe('exit code 1\nout\nstderr:\nerr');
    expect(formatToolOutput(run(0, 'out'), false)).toBe('exit code 0\nout');
  });

  it('says a command timed out, and that its output was cut', () => {
    expect(formatToolOutput(run(124, '', '', true), false)).toBe(
      `exit code 124 (timed out)\n[output truncated to ${TOOL_OUTPUT_LIMIT_BYTES} bytes per stream]`,
    );
  });

  it("gives the editor's answer alone, or its error", () => {
    expect(formatToolOutput(run(0, 'The file was edited.'), true)).toBe('The file was edited.');
    expect(formatToolOutput(run(2, '', 'no such file'), true)).toBe('no such file');
    expect(formatToolOutput(run(2), true)).toBe('the tool failed with exit code 2');
  });
});
