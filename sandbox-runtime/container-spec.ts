import type { ContainerCreateOptions } from 'dockerode';

/** The unprivileged user baked into the sandbox image (sandbox/Dockerfile). */
export const SANDBOX_UID = 10001;
export const WORKSPACE_PATH = '/workspace';

export interface SandboxLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
  /** The workspace's disk quota; no single file may be larger either. */
  diskMb: number;
}

/** Safe defaults; a task can only ask for values inside MAX_SANDBOX_LIMITS (and the instance's WORKSPACE_MAX_MB). */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { memoryMb: 1024, cpus: 1, pids: 256, diskMb: 1024 };
export const MIN_SANDBOX_LIMITS: SandboxLimits = { memoryMb: 64, cpus: 0.1, pids: 16, diskMb: 16 };
export const MAX_SANDBOX_LIMITS: SandboxLimits = { memoryMb: 8192, cpus: 4, pids: 4096, diskMb: 65536 };
/** Open files per process in the sandbox. */
export const SANDBOX_OPEN_FILES = 4096;

export const SANDBOX_LABEL_MANAGED = 'agent-orchestrator.managed';
export const SANDBOX_LABEL_WORKFLOW = 'agent-orchestrator.workflow-id';
/** Which instance (namespace/task queue) owns the container: a reconciler only touches its own. */
export const SANDBOX_LABEL_INSTANCE = 'agent-orchestrator.instance';

export interface SandboxSpecInput {
  name: string;
  image: string;
  command: string[];
  workflowId: string;
  /** `<namespace>/<task queue>` of the owning instance. */
  instance: string;
  /** Host directory bind-mounted read-write at /workspace. */
  workspaceHostPath: string;
  limits?: Partial<SandboxLimits>;
  labels?: Record<string, string>;
  /**
   * The OCI runtime: runc (Docker's default) or runsc (gVisor, a user-space kernel between the agent and the host's).
   */
  runtime?: SandboxRuntime;
}

export const SANDBOX_RUNTIMES = ['runc', 'runsc'] as const;
export type SandboxRuntime = (typeof SANDBOX_RUNTIMES)[number];

/**
 * The container definition every sandbox gets: no network, no capabilities, no privilege escalation,
 * a non-root user, a read-only root with only /workspace writable and a small noexec /tmp, resource
 * limits and an init process reaping zombies. Nothing here may be loosened by the caller except the
 * limits, and those are clamped.
 */
export function hardenedContainerSpec(input: SandboxSpecInput): ContainerCreateOptions & { name: string } {
  const limits = clampLimits(input.limits);
  const memoryBytes = limits.memoryMb * 1024 * 1024;
  return {
    name: input.name,
    Image: input.image,
    Cmd: input.command,
    User: `${SANDBOX_UID}:${SANDBOX_UID}`,
    WorkingDir: WORKSPACE_PATH,
    Env: ['HOME=/tmp', 'LANG=C.UTF-8'],
    NetworkDisabled: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    Labels: {
      ...input.labels,
      [SANDBOX_LABEL_MANAGED]: 'true',
      [SANDBOX_LABEL_WORKFLOW]: input.workflowId,
      [SANDBOX_LABEL_INSTANCE]: input.instance,
    },
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      ReadonlyRootfs: true,
      Init: true,
      Binds: [`${input.workspaceHostPath}:${WORKSPACE_PATH}:rw`],
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=64m' },
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: limits.pids,
      Ulimits: [
        { Name: 'nofile', Soft: SANDBOX_OPEN_FILES, Hard: SANDBOX_OPEN_FILES },
        { Name: 'fsize', Soft: limits.diskMb * 1024 * 1024, Hard: limits.diskMb * 1024 * 1024 },
      ],
      IpcMode: 'private',
      AutoRemove: false,
      ...(input.runtime === 'runsc' ? { Runtime: 'runsc' } : {}),
    },
  };
}

export function clampLimits(requested: Partial<SandboxLimits> = {}): SandboxLimits {
  const pick = (key: keyof SandboxLimits): number => {
    const value = requested[key] ?? DEFAULT_SANDBOX_LIMITS[key];
    return Math.min(Math.max(value, MIN_SANDBOX_LIMITS[key]), MAX_SANDBOX_LIMITS[key]);
  };
  return { memoryMb: pick('memoryMb'), cpus: pick('cpus'), pids: pick('pids'), diskMb: pick('diskMb') };
}
