import type { AdmissionState, SlotAnswer, SlotRequest } from './contract';
import { HOST_SILENT_AFTER_MS } from './contract';

/**
 * The admission rules as pure functions over the admission state (the workflow applies them; the
 * unit tests check them without Temporal). They mutate the state they are given.
 */
export const emptyAdmissionState = (): AdmissionState => ({ hosts: {}, holders: [], waiting: [], nextSeq: 0 });

/** Higher priority first, then first come. */
function byPriorityThenArrival(state: AdmissionState): void {
  state.waiting.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
}

/** The reporting host with the most free slots (ties: the smallest id), or null when all are full or silent. */
export function hostWithFreeSlot(state: AdmissionState, now: number): string | null {
  const used: Record<string, number> = {};
  for (const { hostId } of state.holders) used[hostId] = (used[hostId] ?? 0) + 1;
  let best: { hostId: string; free: number } | null = null;
  for (const [hostId, host] of Object.entries(state.hosts).sort(([a], [b]) => a.localeCompare(b))) {
    if (now - host.lastSeenAt > HOST_SILENT_AFTER_MS) continue;
    const free = host.capacity - (used[hostId] ?? 0);
    if (free > 0 && (best === null || free > best.free)) best = { hostId, free };
  }
  return best?.hostId ?? null;
}

/** Moves waiting agents onto free slots, best first; returns the grants to announce. */
export function admitWaiting(state: AdmissionState, now: number): Array<{ agentId: string; hostId: string }> {
  byPriorityThenArrival(state);
  const granted: Array<{ agentId: string; hostId: string }> = [];
  for (;;) {
    const next = state.waiting[0];
    const hostId = next ? hostWithFreeSlot(state, now) : null;
    if (!next || !hostId) return granted;
    state.waiting.shift();
    state.holders.push({ agentId: next.agentId, hostId, since: now });
    granted.push({ agentId: next.agentId, hostId });
  }
}

/** Adds a request (idempotent per agent: a second request keeps its place and priority). */
export function enqueue(state: AdmissionState, request: SlotRequest): void {
  if (
    state.holders.some((holder) => holder.agentId === request.agentId) ||
    state.waiting.some((waiter) => waiter.agentId === request.agentId)
  )
    return;
  state.waiting.push({ ...request, seq: state.nextSeq });
  state.nextSeq += 1;
}

/** Where an agent stands: admitted on a host, or queued behind `ahead` others. Unknown agents count as queued first. */
export function answerFor(state: AdmissionState, agentId: string): SlotAnswer {
  const holder = state.holders.find((candidate) => candidate.agentId === agentId);
  if (holder) return { state: 'admitted', hostId: holder.hostId };
  const index = state.waiting.findIndex((waiter) => waiter.agentId === agentId);
  return { state: 'queued', ahead: Math.max(0, index) };
}

/**
 * The holders worth checking for a workflow that ended without releasing its slot: not those admitted
 * in the last `graceMs`, whose workflow may not have started yet (the API asks before it starts it).
 */
export const holdersToCheck = (state: AdmissionState, now: number, graceMs: number): string[] =>
  state.holders
    .filter((holder) => holder.since === undefined || now - holder.since > graceMs)
    .map((holder) => holder.agentId);

/** Frees an agent's slot or takes it out of the queue; true when something changed. */
export function release(state: AdmissionState, agentId: string): boolean {
  const before = state.holders.length + state.waiting.length;
  state.holders = state.holders.filter((holder) => holder.agentId !== agentId);
  state.waiting = state.waiting.filter((waiter) => waiter.agentId !== agentId);
  return state.holders.length + state.waiting.length !== before;
}
