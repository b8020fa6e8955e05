import { createHash, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import type { ContainerCreateOptions, ContainerInfo } from 'dockerode';
import { z } from 'zod';
import { SANDBOX_UID, WORKSPACE_PATH } from './container-spec';
import { TOOL_CALLS_DIR, TOOL_RUNNER } from './tool-scripts';

export interface ContainerRunOptions {
  timeoutMs: number;
  /** Each of stdout and stderr keeps at most this many bytes; the rest is counted and dropped. */
  maxOutputBytes: number;
  /** Aborting kills the container (an activity passes its cancellation signal here). */
  signal?: AbortSignal;
}

export interface ContainerRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  outputTruncated: boolean;
  oomKilled: boolean;
  timedOut: boolean;
}

/** Collects a stream up to a byte limit and remembers whether anything was dropped. */
class CappedSink extends Writable {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const room = this.limit - this.kept;
    if (chunk.length > room) this.truncated = true;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.chunks.push(part);
      this.kept += part.length;
    }
    done();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * Splits a Docker attach/exec stream into capped stdout and stderr; `ended` settles when the stream
 * does (rejecting on a stream error).
 */
function collectOutput(docker: Docker, stream: NodeJS.ReadableStream, maxBytes: number) {
  const stdout = new CappedSink(maxBytes);
  const stderr = new CappedSink(maxBytes);
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  docker.modem.demuxStream(stream, stdout, stderr);
  return {
    ended,
    result: () => ({
      stdout: stdout.text(),
      stderr: stderr.text(),
      outputTruncated: stdout.truncated || stderr.truncated,
    }),
  };
}

/** A listed container's name (the engine lists names with a leading slash), or its id. */
export const containerNameOf = (container: Pick<ContainerInfo, 'Names' | 'Id'>): string =>
  container.Names[0]?.replace(/^\//, '') ?? container.Id;

/**
 * The engine did not create a command in the container (it is gone: 404, not running or paused: 409, or the engine
 * did not answer): nothing ran. Keeps the engine's status code, so isNotFound still tells.
 */
export class ExecNotStarted extends Error {
  readonly statusCode: number | undefined;
  constructor(cause: unknown) {
    super(`the command was not started: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'ExecNotStarted';
    this.statusCode = (cause as { statusCode?: number } | null)?.statusCode;
  }
}

/** Whether Docker answered 404 (the container does not exist), as opposed to not answering at all. */
export function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { statusCode?: number }).statusCode === 404;
}

/**
 * Removes a container (by name or id) if it exists: a retried activity clears its previous attempt, the reconciler its
 * orphans.
 */
export async function removeContainerIfPresent(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getContainer(name).remove({ force: true });
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    // Another removal (a kill's, beside the teardown's) is under way: done once the engine has finished it.
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
    await docker
      .getContainer(name)
      .wait({ condition: 'removed' })
      .catch((waitError: unknown) => {
        if (!isNotFound(waitError)) throw waitError;
      });
    return false; // the other removal did it
  }
}

/**
 * Creates a container from the given (already hardened) spec, streams its output, waits for it to
 * exit or for the timeout, and always removes it. The container name is the idempotency key: a
 * leftover from an earlier attempt with the same name is removed first.
 */
export async function runContainerToCompletion(
  docker: Docker,
  spec: ContainerCreateOptions & { name: string },
  options: ContainerRunOptions,
): Promise<ContainerRunResult> {
  await removeContainerIfPresent(docker, spec.name);
  const container = await docker.createContainer(spec);
  let timedOut = false;
  const kill = (): void => {
    container.kill().catch(() => undefined); // already gone is fine: wait() below settles either way
  };
  try {
    const output = collectOutput(
      docker,
      await container.attach({ stream: true, stdout: true, stderr: true }),
      options.maxOutputBytes,
    );
    // The container's exit is what counts here; a broken log stream only loses output.
    const drained = output.ended.catch(() => undefined);

    options.signal?.throwIfAborted();
    options.signal?.addEventListener('abort', kill, { once: true });
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    try {
      await container.start();
      const exit = (await container.wait()) as { StatusCode: number };
      await drained;
      const state = (await container.inspect()).State;
      options.signal?.throwIfAborted();
      return { exitCode: exit.StatusCode, ...output.result(), oomKilled: state.OOMKilled, timedOut };
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
    }
  } finally {
    await container.remove({ force: true }).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  outputTruncated: boolean;
}

/** Thrown when the container itself stopped while a command ran in it (an OOM under gVisor ends the whole sandbox). */
export class SandboxGone extends Error {
  override readonly name = 'SandboxGone';
}

/** Where a command's process group id is kept inside the sandbox, so that a cancelled call can be ended there. */
const PID_FILE_PREFIX = '/tmp/.exec-';

/** Ends a command's whole process group inside the container (the wrapper recorded its id). */
async function killInContainer(docker: Docker, containerName: string, pidFile: string): Promise<void> {
  const exec = await docker.getContainer(containerName).exec({
    // (dash, the sandbox's sh, takes no "--" in kill: "-PGID" after the signal is the group.)
    Cmd: ['sh', '-c', 'p=$(cat "$1" 2>/dev/null) && kill -KILL "-$p" 2>/dev/null; rm -f "$1"', 'kill', pidFile],
    User: `${SANDBOX_UID}:${SANDBOX_UID}`,
  });
  // dockerode answers even a detached start with the response stream: drained, so its socket is freed
  // (left paused, it kept one socket per kill open and a stopping worker waiting for it).
  const response = (await exec.start({ Detach: true })) as NodeJS.ReadableStream;
  response.resume();
}

/**
 * Ends every command an earlier attempt left running in the sandbox (the process groups the exec
 * wrapper recorded; the commands of one agent never run side by side), and the lock git leaves when
 * it is killed. For an activity retried after its worker died.
 */
export async function endLeftoverCommands(docker: Docker, containerName: string): Promise<void> {
  const script = [
    'me=$(cut -d" " -f5 /proc/$$/stat)', // this command's own process group
    `for f in ${PID_FILE_PREFIX}*; do [ -e "$f" ] || continue; p=$(cat ` +
      `"$f"); [ "$p" = "$me" ] && continue; kill -KILL "-$p" 2>/dev/null; rm ` +
      `-f "$f"; done`,
    'rm -f .git/index.lock',
  ].join('\n');
  await execInContainer(docker, containerName, ['sh', '-c', script], { timeoutMs: 30_000, maxOutputBytes: 1024 });
}

/**
 * Runs a command inside a running sandbox as the sandbox user and collects its capped output. The
 * per-command timeout is enforced inside the container by coreutils `timeout` (exit code 124), which
 * leads its own process group; aborting the signal ends that whole group inside the container, not
 * only the stream. `stdin` reaches the command as its standard input (no argv size limit). If the
 * container itself stops meanwhile, the call ends with SandboxGone instead of waiting forever (unless
 * `watchContainer` is false: runc ends an exec's stream with its container, so no watch is needed there).
 */
export async function execInContainer(
  docker: Docker,
  containerName: string,
  command: string[],
  options: ContainerRunOptions & { stdin?: Buffer; watchContainer?: boolean },
): Promise<ExecResult> {
  const seconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));
  const pidFile = `${PID_FILE_PREFIX}${randomUUID()}`;
  const container = docker.getContainer(containerName);
  const exec = await container
    .exec({
      // The wrapper drops the ids of commands that have ended, records its own, and becomes `timeout`.
      Cmd: [
        'sh',
        '-c',
        `for f in ${PID_FILE_PREFIX}*; do [ -e "$f" ] && ! kill -0 "$(cat ` +
          `"$f")" 2>/dev/null && rm -f "$f"; done; echo $$ > "$0"; exec "$@"`,
        pidFile,
        'timeout',
        '--kill-after=5',
        String(seconds),
        ...command,
      ],
      AttachStdin: options.stdin !== undefined,
      AttachStdout: true,
      AttachStderr: true,
      User: `${SANDBOX_UID}:${SANDBOX_UID}`,
      WorkingDir: WORKSPACE_PATH,
    })
    .catch((error: unknown) => {
      throw new ExecNotStarted(error);
    });
  const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined });
  const output = collectOutput(docker, stream, options.maxOutputBytes);
  if (options.stdin !== undefined) stream.end(options.stdin);

  const abort = (): void => {
    stream.destroy();
    killInContainer(docker, containerName, pidFile).catch(() => undefined); // a gone container has nothing left to kill
  };
  options.signal?.addEventListener('abort', abort, { once: true });
  const watching = new AbortController();
  const sandbox = { gone: false }; // set when the container stops first
  if (options.watchContainer !== false) {
    container
      .wait({ abortSignal: watching.signal })
      .then(() => {
        sandbox.gone = true;
        stream.destroy();
      })
      .catch(() => undefined); // aborted when the command ends first
  }
  try {
    await output.ended;
    options.signal?.throwIfAborted();
    if (sandbox.gone) throw new SandboxGone(`the sandbox ${containerName} stopped while a command ran in it`);
    const { ExitCode } = await exec.inspect();
    return { exitCode: ExitCode ?? -1, ...output.result() };
  } finally {
    watching.abort();
    options.signal?.removeEventListener('abort', abort);
  }
}

/** What a detached call ended with (see TOOL_RUNNER), or `lost` when its keeper ended without a result. */
export type DetachedOutcome = (ExecResult & { reattached: boolean; endedAt: Date }) | { lost: string };

const RunnerOutput = z.union([
  z.object({ lost: z.string() }),
  z.object({
    exitCode: z.number().int(),
    truncated: z.boolean(),
    endedAt: z.number(),
    stdout: z.string(),
    stderr: z.string(),
    reattached: z.boolean(),
  }),
]);

/**
 * A call's folder in the sandbox: named after a hash of its id (the model chooses ids; they never reach a path as they
 * are).
 */
export const toolCallDir = (toolCallId: string): string =>
  `${TOOL_CALLS_DIR}/${createHash('sha256').update(toolCallId).digest('hex').slice(0, 32)}`;

/**
 * Starts a tool call detached inside the sandbox, or re-attaches to it when an earlier attempt (on a
 * worker that stopped or died) started it, and waits for its outcome. Aborting `signal` stops the
 * waiting only: the call goes on unless `killOnAbort` says it should end with the wait (a kill).
 */
export async function runDetachedInContainer(
  docker: Docker,
  containerName: string,
  call: { id: string; command: string[]; timeoutSeconds: number; maxOutputBytes: number; stdin?: Buffer },
  options: { signal: AbortSignal; killOnAbort: () => boolean; watchContainer: boolean },
): Promise<DetachedOutcome> {
  const dir = toolCallDir(call.id);
  const runner = [
    'perl',
    '-e',
    TOOL_RUNNER,
    dir,
    String(call.maxOutputBytes),
    String(call.timeoutSeconds),
    ...call.command,
  ];
  let output: ExecResult;
  try {
    output = await execInContainer(docker, containerName, runner, {
      // The keeper enforces the call's own timeout; this one only bounds a waiter that hangs.
      timeoutMs: (call.timeoutSeconds + 60) * 1000,
      maxOutputBytes: 4 * call.maxOutputBytes,
      signal: options.signal,
      stdin: call.stdin ?? Buffer.alloc(0),
      watchContainer: options.watchContainer,
    });
  } catch (error) {
    if (options.signal.aborted && options.killOnAbort())
      await endDetachedCall(docker, containerName, dir).catch(() => undefined);
    throw error;
  }
  const parsed = RunnerOutput.safeParse(safeJson(output.stdout));
  if (!parsed.success)
    return {
      lost: `the call's runner failed (exit ${output.exitCode}): ${output.stderr.trim().slice(-500) || 'no output'}`,
    };
  if ('lost' in parsed.data) return { lost: parsed.data.lost };
  const { exitCode, truncated, endedAt, stdout, stderr, reattached } = parsed.data;
  const decode = (text: string): string => Buffer.from(text, 'base64').toString('utf8');
  return {
    exitCode,
    stdout: decode(stdout),
    stderr: decode(stderr),
    outputTruncated: truncated,
    reattached,
    endedAt: new Date(endedAt * 1000),
  };
}

/** Ends a detached call's command (its whole process group); its keeper then records exit 137. */
async function endDetachedCall(docker: Docker, containerName: string, dir: string): Promise<void> {
  await execInContainer(
    docker,
    containerName,
    ['sh', '-c', 'p=$(cat "$1/pgid" 2>/dev/null) && kill -KILL "-$p" 2>/dev/null; true', 'end', dir],
    { timeoutMs: 10_000, maxOutputBytes: 1024 },
  );
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
};
