import { execFile } from 'node:child_process';

/**
 * The helper process of program-runner.ts: runs the programs the worker asks for (over IPC) and
 * answers with their outcome. It stays small, so starting a program from it is cheap.
 */
interface Run {
  kind: 'run';
  id: number;
  file: string;
  args: string[];
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; maxBuffer?: number };
}

const running = new Map<number, AbortController>();

process.on('message', (message: Run | { kind: 'cancel'; id: number }) => {
  if (message.kind === 'cancel') {
    running.get(message.id)?.abort();
    return;
  }
  const { id, file, args, options } = message;
  const controller = new AbortController();
  running.set(id, controller);
  execFile(
    file,
    args,
    {
      cwd: options.cwd,
      env: options.env,
      timeout: options.timeoutMs ?? 0,
      maxBuffer: options.maxBuffer ?? 10 * 1024 * 1024,
      signal: controller.signal,
      encoding: 'utf8',
    },
    (error, stdout, stderr) => {
      running.delete(id);
      const failure = error
        ? {
            message: error.message,
            code: typeof error.code === 'number' ? error.code : null,
            killed: error.killed === true,
            spawnError: typeof error.code === 'string' ? error.code : null,
          }
        : null;
      process.send?.({ id, stdout, stderr, failure });
    },
  );
});
// Ends with the worker: the IPC channel closes when the parent goes.
process.on('disconnect', () => process.exit(0));
