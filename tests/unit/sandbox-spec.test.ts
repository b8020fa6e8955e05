import {
  clampLimits,
  DEFAULT_SANDBOX_LIMITS,
  hardenedContainerSpec,
  MAX_SANDBOX_LIMITS,
  SANDBOX_LABEL_INSTANCE,
  SANDBOX_LABEL_MANAGED,
  SANDBOX_LABEL_WORKFLOW,
} from '../../sandbox-runtime/container-spec';

describe('hardenedContainerSpec', () => {
  const spec = hardenedContainerSpec({
    name: 'agent-1',
    image: 'agent-sandbox:latest',
    command: ['true'],
    workflowId: 'wf-1',
    instance: 'default/agent-orchestrator',
    workspaceHostPath: '/data/workspaces/wf-1',
    labels: { [SANDBOX_LABEL_WORKFLOW]: 'spoofed', [SANDBOX_LABEL_MANAGED]: 'false', team: 'a' },
  });

  it('confines the container by default', () => {
    expect(spec.User).toBe('10001:10001');
    expect(spec.NetworkDisabled).toBe(true);
    expect(spec.HostConfig).toMatchObject({
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      ReadonlyRootfs: true,
      Init: true,
      Binds: ['/data/workspaces/wf-1:/workspace:rw'],
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=64m' },
      Memory: DEFAULT_SANDBOX_LIMITS.memoryMb * 1024 * 1024,
      MemorySwap: DEFAULT_SANDBOX_LIMITS.memoryMb * 1024 * 1024,
      PidsLimit: DEFAULT_SANDBOX_LIMITS.pids,
      Ulimits: [
        { Name: 'nofile', Soft: 4096, Hard: 4096 },
        {
          Name: 'fsize',
          Soft: DEFAULT_SANDBOX_LIMITS.diskMb * 1024 * 1024,
          Hard: DEFAULT_SANDBOX_LIMITS.diskMb * 1024 * 1024,
        },
      ],
    });
    expect(spec.HostConfig?.CapAdd).toBeUndefined();
  });

  it('never mounts the Docker socket', () => {
    expect(JSON.stringify(spec)).not.toContain('docker.sock');
  });

  it('keeps its own labels authoritative over the caller’s', () => {
    expect(spec.Labels).toEqual({
      team: 'a',
      [SANDBOX_LABEL_MANAGED]: 'true',
      [SANDBOX_LABEL_WORKFLOW]: 'wf-1',
      [SANDBOX_LABEL_INSTANCE]: 'default/agent-orchestrator',
    });
  });
});

describe('clampLimits', () => {
  it('fills defaults and clamps to the allowed range', () => {
    expect(clampLimits()).toEqual(DEFAULT_SANDBOX_LIMITS);
    expect(clampLimits({ memoryMb: 1_000_000, cpus: 64, pids: 1_000_000, diskMb: 1_000_000 })).toEqual(
      MAX_SANDBOX_LIMITS,
    );
    expect(clampLimits({ memoryMb: 1, cpus: 0, pids: 1, diskMb: 1 })).toEqual({
      memoryMb: 64,
      cpus: 0.1,
      pids: 16,
      diskMb: 16,
    });
  });
});
