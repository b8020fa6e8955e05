import type { Random } from './random';
import type { Side, Topology } from './topology';

export const FAULT_KINDS = [
  'worker rolling restart',
  'worker killed',
  'API restart',
  'PostgreSQL restart',
  'Temporal restart',
  'Docker restart',
  'link cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** SOAK_FAULTS="Docker restart,link cut" limits the kinds (to reproduce one); default: all. */
export function faultKindsFrom(setting: string | undefined): FaultKind[] {
  if (!setting) return [...FAULT_KINDS];
  const kinds = setting.split(',').map((kind) => kind.trim());
  const unknown = kinds.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
  if (unknown.length > 0)
    throw new Error(`SOAK_FAULTS: unknown fault kinds ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
  return kinds as FaultKind[];
}

export interface InjectedFault {
  kind: FaultKind;
  /** The instance it hit (services are shared by both). */
  side: Side['name'] | 'both';
  /** Seconds since the soak started. */
  atSeconds: number;
  durationMs: number;
  /** What went wrong bringing the component back (a worker that never served again), if anything. */
  error?: string;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Injects one fault and resolves once what it broke is back (a cut link restored, a process started again). */
async function inject(
  topology: Topology,
  kind: FaultKind,
  side: Side,
  random: Random,
  linkCutMs: number,
): Promise<InjectedFault['side']> {
  switch (kind) {
    case 'worker rolling restart':
      // A deploy: one worker drains and comes back, then the other.
      for (const worker of side.workers) {
        await worker.stop('SIGTERM');
        await worker.start();
      }
      return side.name;
    case 'worker killed': {
      const worker = random.pick(side.workers);
      await worker.stop('SIGKILL');
      await pause(2_000);
      await worker.start();
      return side.name;
    }
    case 'API restart':
      await side.api.stop('SIGTERM');
      await side.api.start();
      return side.name;
    case 'PostgreSQL restart':
      await topology.postgres.stop();
      await pause(5_000);
      await topology.postgres.start();
      return 'both';
    case 'Temporal restart':
      await topology.temporal.stop();
      await pause(3_000);
      await topology.temporal.start();
      return 'both';
    case 'Docker restart':
      await topology.docker.stop();
      await pause(2_000);
      await topology.docker.start();
      return 'both';
    case 'link cut':
      topology.hub.proxy.cutLink();
      topology.spoke.proxy.cutLink();
      await pause(linkCutMs);
      topology.hub.proxy.restore();
      topology.spoke.proxy.restore();
      return 'both';
  }
}

/**
 * Until `until`, injects faults at random times (gaps uniform around `meanGapMs`), one at a time,
 * every kind before any kind repeats (at least one of each, even past `until`), on a random instance.
 */
export async function injectFaults(
  topology: Topology,
  random: Random,
  schedule: { startedAt: number; until: number; meanGapMs: number; linkCutMs: number; kinds: readonly FaultKind[] },
  stop: AbortSignal,
): Promise<InjectedFault[]> {
  const injected: InjectedFault[] = [];
  let queue: FaultKind[] = [];
  for (;;) {
    await pause(schedule.meanGapMs * (0.5 + random.next()));
    // Past the end only to finish the first round: every kind is injected at least once.
    const roundDone = injected.length >= schedule.kinds.length;
    if (stop.aborted || (Date.now() >= schedule.until && roundDone)) return injected;
    if (queue.length === 0) queue = random.shuffle(schedule.kinds);
    const kind = queue.shift() as FaultKind;
    const side = random.pick([topology.hub, topology.spoke]);
    const began = Date.now();
    const fault = { kind, atSeconds: Math.round((began - schedule.startedAt) / 1000) };
    try {
      const hit = await inject(topology, kind, side, random, schedule.linkCutMs);
      injected.push({ ...fault, side: hit, durationMs: Date.now() - began });
    } catch (error) {
      injected.push({
        ...fault,
        side: side.name,
        durationMs: Date.now() - began,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
