import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { hardenedContainerSpec, type SandboxRuntime } from '../sandbox-runtime/container-spec';

/** The hardened spec an agent's sandbox gets, for a container of no agent. */
export const bareSpec = (name: string, image: string, runtime: SandboxRuntime, workspace: string) =>
  hardenedContainerSpec({
    name,
    image,
    runtime,
    command: ['sleep', 'infinity'],
    workflowId: name,
    instance: 'bench-baseline',
    workspaceHostPath: workspace,
  });

/** The burst's baseline: `count` hardened containers created and started at once, then removed. */
export async function bareBurst(
  docker: Docker,
  image: string,
  runtime: SandboxRuntime,
  count: number,
): Promise<{ allStartedMs: number }> {
  const workspace = await mkdtemp(path.join(os.tmpdir(), 'bench-bare-burst-'));
  const names = Array.from({ length: count }, (_, index) => `bench-bare-burst-${Date.now()}-${index}`);
  try {
    const started = performance.now();
    await Promise.all(
      names.map(async (name) => {
        await (await docker.createContainer(bareSpec(name, image, runtime, workspace))).start();
      }),
    );
    return { allStartedMs: performance.now() - started };
  } finally {
    await Promise.all(
      names.map((name) =>
        docker
          .getContainer(name)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await rm(workspace, { recursive: true, force: true });
  }
}

/**
 * The baselines of spawn and kill: a bare dockerode create+start of the same image with the same
 * hardened options (and a workspace bind) as an agent's sandbox, and a bare forced remove of it.
 */
export async function bareCreateStart(
  docker: Docker,
  image: string,
  runtime: SandboxRuntime,
  name: string,
): Promise<{ createStartMs: number; removeMs: number }> {
  const workspace = await mkdtemp(path.join(os.tmpdir(), 'bench-bare-'));
  try {
    const spec = bareSpec(name, image, runtime, workspace);
    const started = performance.now();
    const container = await docker.createContainer(spec);
    await container.start();
    const createStartMs = performance.now() - started;
    const removing = performance.now();
    await container.remove({ force: true });
    return { createStartMs, removeMs: performance.now() - removing };
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}
