import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/**
 * Runs external programs (git, mkfs, mount, chown, …) from a small helper process instead of the
 * worker itself. Starting a program forks the process that starts it, and forking the worker (hundreds
 * of MB with its workflow isolates) blocked its event loop for tens of milliseconds each time: 37 s of
 * a 100-agent burst's 140 s of worker CPU went there. The helper is forked once and stays small. Its
 * answers reject like execFile's: a nonzero exit is a ProgramError with the program's stdout and stderr.
 */
export interface ProgramOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  maxBuffer?: number;
  /** Aborting it kills the program. */
  signal?: AbortSignal;
}

export class ProgramError extends Error {
  override readonly name = 'ProgramError';
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    /** The exit code; null when the program was killed or could not start. */
    readonly code: number | null,
  ) {
    super(message);
  }
}

interface Answer {
  id: number;
  stdout: string;
  stderr: string;
  failure: { message: string; code: number | null; killed: boolean; spawnError: string | null } | null;
}

interface Pending {
  resolve: (output: { stdout: string; stderr: string }) => void;
  reject: (error: Error) => void;
}

let helper: ChildProcess | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function startHelper(): ChildProcess {
  // The compiled helper beside this file in dist/ (the tests run the sources, and the build beside them).
  const compiled = __filename.endsWith('.js') ? __dirname : path.resolve(__dirname, '../dist/platform');
  const child = fork(path.join(compiled, 'program-runner-child.js'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: [],
  });
  child.on('message', (answer: Answer) => {
    const waiting = pending.get(answer.id);
    if (!waiting) return;
    pending.delete(answer.id);
    if (!answer.failure) waiting.resolve({ stdout: answer.stdout, stderr: answer.stderr });
    else waiting.reject(new ProgramError(answer.failure.message, answer.stdout, answer.stderr, answer.failure.code));
  });
  child.once('exit', () => {
    if (helper === child) helper = null;
    for (const [id, waiting] of pending) {
      pending.delete(id);
      waiting.reject(new ProgramError('the program runner stopped', '', '', null));
    }
  });
  // The helper never keeps the worker alive on its own.
  child.unref();
  child.channel?.unref();
  return child;
}

export function runProgram(
  file: string,
  args: string[],
  options: ProgramOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  helper ??= startHelper();
  const child = helper;
  const id = nextId++;
  const { signal, ...rest } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ProgramError('aborted before it started', '', '', null));
      return;
    }
    const onAbort = (): void => {
      child.send({ kind: 'cancel', id });
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    pending.set(id, {
      resolve: (output) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(output);
      },
      reject: (error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      },
    });
    child.send({ kind: 'run', id, file, args, options: rest });
  });
}

/**
 * Ends the helper (it starts again on the next run): for a test file's end, where each file has its own module copy.
 */
export function stopProgramRunner(): void {
  helper?.kill();
  helper = null;
}
