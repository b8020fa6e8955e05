import { randomUUID } from 'node:crypto';
import { lstat, mkdir, realpath, rename, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { containerNameOf, removeContainerIfPresent } from './containers';
import {
  clampLimits,
  hardenedContainerSpec,
  SANDBOX_LABEL_INSTANCE,
  SANDBOX_LABEL_MANAGED,
  type SandboxLimits,
  type SandboxRuntime,
} from './container-spec';
import { prepareWorkspace, removeWorkspace, type QuotaMode } from './workspace';

/**
 * Marks a warm container (value: its host); its slot workspace is in POOL_SLOT_LABEL. Labels never change, so a claimed
 * one keeps them.
 */
export const POOL_LABEL = 'agent-orchestrator.warm-pool';
export const POOL_SLOT_LABEL = 'agent-orchestrator.warm-pool-slot';
const POOL_NAME_PREFIX = 'pool-';
/** How often the pool checks its size (besides after every claim and release). */
const REFILL_INTERVAL_MS = 10_000;

export interface WarmPoolSettings {
  docker: Docker;
  size: number;
  /** The host's capacity: agents and warm containers together never exceed it. */
  capacity: number;
  hostId: string;
  instance: string;
  sandboxImage: string;
  sandboxRuntime: SandboxRuntime;
  /** Where slot workspaces live (beside, not inside, the agents' workspaces). */
  slotsDir: string;
  quotaMode: QuotaMode;
  /** The quota of a slot workspace: what an agent with default options gets. */
  quotaMb: number;
  onError?: (error: unknown) => void;
}

/** A started container and its empty workspace, claimed by one agent and never given to another. */
export interface WarmSlot {
  containerName: string;
  workspace: string;
}

export interface WarmPool {
  /** The limits a pool container has: only an agent asking for exactly these can claim one. */
  readonly limits: SandboxLimits;
  readonly quotaMb: number;
  /**
   * A warm container for an agent, or null when none is ready: its slot becomes the agent's workspace
   * (`agentWorkspace` links to it) and the container is renamed to `containerName`.
   */
  claim(containerName: string, agentWorkspace: string): Promise<WarmSlot | null>;
  /**
   * Frees a place for a sandbox launched without the pool: destroys a warm one if the host would otherwise exceed its
   * capacity.
   */
  makeRoom(): Promise<void>;
  /** Whether `name` is one of this pool's unclaimed containers (the reconciler keeps those). */
  owns(name: string): boolean;
  /** Tops the pool up now (also every few seconds once started). */
  refill(): Promise<void>;
  start(): void;
  /** Stops refilling and removes the unclaimed containers. */
  stop(): Promise<void>;
}

export const isUnclaimedPoolContainer = (name: string): boolean => name.startsWith(POOL_NAME_PREFIX);

/**
 * A per-host pool of hardened sandbox containers created and started ahead of demand, each bound
 * to an empty slot workspace, so that a launch only clones into the slot and claims the container.
 * A claimed container belongs to its agent until teardown destroys it; the pool then creates a new
 * one. Agents plus warm containers never exceed the host's capacity: the pool only fills free
 * places, and a launch without the pool evicts a warm container when the host is full.
 */
export function createWarmPool(settings: WarmPoolSettings): WarmPool {
  const { docker } = settings;
  const limits = clampLimits();
  const ready: WarmSlot[] = [];
  let creating = 0;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let refilling: Promise<void> = Promise.resolve();

  /** This instance's sandboxes on this host that are not warm (agents, claimed or not). */
  async function sandboxesInUse(): Promise<number> {
    const all = await docker.listContainers({
      all: true,
      filters: { label: [`${SANDBOX_LABEL_MANAGED}=true`, `${SANDBOX_LABEL_INSTANCE}=${settings.instance}`] },
    });
    return all.filter((container) => !isUnclaimedPoolContainer(containerNameOf(container))).length;
  }

  async function createOne(): Promise<void> {
    const id = randomUUID();
    const slot: WarmSlot = { containerName: `${POOL_NAME_PREFIX}${id}`, workspace: path.join(settings.slotsDir, id) };
    try {
      await prepareWorkspace(slot.workspace, settings.quotaMb, settings.quotaMode);
      const spec = hardenedContainerSpec({
        name: slot.containerName,
        image: settings.sandboxImage,
        runtime: settings.sandboxRuntime,
        command: ['sleep', 'infinity'],
        workflowId: '',
        instance: settings.instance,
        workspaceHostPath: slot.workspace,
        limits: { ...limits, diskMb: settings.quotaMb },
        labels: { [POOL_LABEL]: settings.hostId, [POOL_SLOT_LABEL]: slot.workspace },
      });
      await (await docker.createContainer(spec)).start();
      if (stopped) throw new Error('the pool stopped');
      ready.push(slot);
    } catch (error) {
      await discard(slot);
      if (!stopped) settings.onError?.(error);
    }
  }

  async function discard(slot: WarmSlot): Promise<void> {
    await removeContainerIfPresent(docker, slot.containerName).catch(() => undefined);
    await removeWorkspace(slot.workspace).catch(() => undefined);
  }

  async function topUp(): Promise<void> {
    if (stopped) return;
    const free = settings.capacity - (await sandboxesInUse()) - ready.length - creating;
    const wanted = Math.min(settings.size - ready.length - creating, free);
    if (wanted <= 0) return;
    creating += wanted;
    // One at a time: a burst of spawns gets the engine's attention before the pool does.
    for (let index = 0; index < wanted; index++) {
      try {
        await createOne();
      } finally {
        creating -= 1;
      }
    }
  }

  const refill = (): Promise<void> => {
    refilling = refilling.then(topUp).catch((error: unknown) => settings.onError?.(error));
    return refilling;
  };

  return {
    limits,
    quotaMb: settings.quotaMb,
    async claim(containerName, agentWorkspace) {
      for (;;) {
        const slot = ready.shift();
        if (!slot) {
          void refill();
          return null;
        }
        // Linked first: a launch retried after a crash finds either the renamed container with its
        // workspace, or no container and a link it drops (see dropDanglingLink).
        try {
          await linkSlotWorkspace(slot.workspace, agentWorkspace);
          await docker.getContainer(slot.containerName).rename({ name: containerName });
        } catch (error) {
          settings.onError?.(error);
          await rm(agentWorkspace, { force: true }).catch(() => undefined);
          await discard(slot);
          continue;
        }
        void refill();
        return { containerName, workspace: slot.workspace };
      }
    },
    async makeRoom() {
      await refilling; // a warm sandbox being created counts too
      if ((await sandboxesInUse()) + ready.length < settings.capacity) return;
      const slot = ready.shift();
      if (slot) await discard(slot);
    },
    owns: (name) => ready.some((slot) => slot.containerName === name),
    refill,
    start() {
      if (timer || stopped) return;
      void refill();
      timer = setInterval(() => void refill(), REFILL_INTERVAL_MS);
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await refilling;
      await Promise.all(ready.splice(0).map(discard));
    },
  };
}

/**
 * Makes a claimed slot the agent's workspace: `workspacesDir/<agentId>` becomes a link to the slot,
 * so everything that finds an agent's workspace by its id (quota checks, teardown, retention) finds it.
 */
export async function linkSlotWorkspace(slotWorkspace: string, agentWorkspace: string): Promise<void> {
  const existing = await realpath(agentWorkspace).catch(() => null);
  if (existing === slotWorkspace) return;
  await mkdir(path.dirname(agentWorkspace), { recursive: true });
  const temporary = `${agentWorkspace}.link-${randomUUID()}`;
  await symlink(slotWorkspace, temporary, 'dir');
  await rename(temporary, agentWorkspace);
}

/** Removes `dir` if it is a link whose slot is gone (a claim a crashed worker did not finish). */
export async function dropDanglingLink(dir: string): Promise<void> {
  const entry = await lstat(dir).catch(() => null);
  if (entry?.isSymbolicLink() && !(await stat(dir).catch(() => null))) await rm(dir, { force: true });
}
