import { HOST_SILENT_AFTER_MS, type AdmissionState } from '../../workflows/admission/contract';
import {
  admitWaiting,
  answerFor,
  emptyAdmissionState,
  enqueue,
  holdersToCheck,
  hostWithFreeSlot,
  release,
} from '../../workflows/admission/queue';

const NOW = 1_000_000;

function withHosts(hosts: Record<string, number>): AdmissionState {
  const state = emptyAdmissionState();
  for (const [hostId, capacity] of Object.entries(hosts)) state.hosts[hostId] = { capacity, lastSeenAt: NOW };
  return state;
}

describe('admission rules', () => {
  it('admits up to each host’s capacity and queues the rest', () => {
    const state = withHosts({ a: 1, b: 1 });
    for (const agentId of ['x', 'y', 'z']) enqueue(state, { agentId, priority: 5 });
    expect(admitWaiting(state, NOW)).toEqual([
      { agentId: 'x', hostId: 'a' },
      { agentId: 'y', hostId: 'b' },
    ]);
    expect(answerFor(state, 'z')).toEqual({ state: 'queued', ahead: 0 });
  });

  it('admits by priority, then first come, first served', () => {
    const state = withHosts({ a: 0 });
    enqueue(state, { agentId: 'early-low', priority: 2 });
    enqueue(state, { agentId: 'early-normal', priority: 5 });
    enqueue(state, { agentId: 'urgent', priority: 9 });
    enqueue(state, { agentId: 'late-normal', priority: 5 });
    admitWaiting(state, NOW);
    expect(state.waiting.map((waiter) => waiter.agentId)).toEqual([
      'urgent',
      'early-normal',
      'late-normal',
      'early-low',
    ]);
    expect(answerFor(state, 'late-normal')).toEqual({ state: 'queued', ahead: 2 });

    state.hosts.a = { capacity: 2, lastSeenAt: NOW };
    expect(admitWaiting(state, NOW).map((grant) => grant.agentId)).toEqual(['urgent', 'early-normal']);
  });

  it('keeps a repeated request in its place and its slot', () => {
    const state = withHosts({ a: 1 });
    enqueue(state, { agentId: 'x', priority: 5 });
    admitWaiting(state, NOW);
    enqueue(state, { agentId: 'x', priority: 10 });
    enqueue(state, { agentId: 'y', priority: 5 });
    enqueue(state, { agentId: 'y', priority: 10 });
    admitWaiting(state, NOW);
    expect(answerFor(state, 'x')).toEqual({ state: 'admitted', hostId: 'a' });
    expect(state.waiting).toEqual([{ agentId: 'y', priority: 5, seq: 1 }]);
  });

  it('gives a released slot to the next waiting agent, and takes a released waiter out of the queue', () => {
    const state = withHosts({ a: 1 });
    for (const agentId of ['x', 'y', 'z']) enqueue(state, { agentId, priority: 5 });
    admitWaiting(state, NOW);
    expect(release(state, 'y')).toBe(true);
    expect(release(state, 'x')).toBe(true);
    expect(admitWaiting(state, NOW)).toEqual([{ agentId: 'z', hostId: 'a' }]);
    expect(release(state, 'unknown')).toBe(false);
  });

  it('sends no agent to a host that stopped reporting, and prefers the host with the most free slots', () => {
    const state = withHosts({ a: 4, b: 2 });
    state.hosts.a = { capacity: 4, lastSeenAt: NOW - HOST_SILENT_AFTER_MS - 1 };
    expect(hostWithFreeSlot(state, NOW)).toBe('b');
    state.hosts.a = { capacity: 4, lastSeenAt: NOW };
    expect(hostWithFreeSlot(state, NOW)).toBe('a');
    state.holders.push({ agentId: 'p', hostId: 'a' }, { agentId: 'q', hostId: 'a' }, { agentId: 'r', hostId: 'a' });
    expect(hostWithFreeSlot(state, NOW)).toBe('b');
    expect(hostWithFreeSlot(emptyAdmissionState(), NOW)).toBeNull();
  });

  it('starts 1,000 queued agents over 5 hosts in priority order, then first come, first served', () => {
    const state = withHosts({ a: 2, b: 2, c: 1, d: 3, e: 2 });
    // Ten agents fill the ten slots; then 1,000 arrive with priorities from a fixed pseudo-random sequence.
    for (let index = 0; index < 10; index++) enqueue(state, { agentId: `first-${index}`, priority: 5 });
    expect(admitWaiting(state, NOW)).toHaveLength(10);
    let seed = 7;
    const queued = Array.from({ length: 1000 }, (_, index) => {
      seed = (seed * 48271) % 2147483647;
      return { agentId: `queued-${index}`, priority: 1 + (seed % 10), arrival: index };
    });
    for (const { agentId, priority } of queued) enqueue(state, { agentId, priority });
    admitWaiting(state, NOW);
    expect(state.waiting).toHaveLength(1000);

    // Each ending agent frees its slot for the best waiting one, on whichever host it freed.
    const started: string[] = [];
    while (state.holders.length > 0) {
      const ending = state.holders[0]!;
      release(state, ending.agentId);
      const granted = admitWaiting(state, NOW);
      expect(granted.every((grant) => grant.hostId === ending.hostId)).toBe(true);
      started.push(...granted.map((grant) => grant.agentId));
    }
    const expected = [...queued]
      .sort((x, y) => y.priority - x.priority || x.arrival - y.arrival)
      .map((agent) => agent.agentId);
    expect(started).toEqual(expected);
    // No host ever held more than its capacity.
    expect(state.waiting).toEqual([]);
  });

  it('checks only holders admitted long enough ago for a workflow that ended without releasing', () => {
    const state = withHosts({ a: 3 });
    for (const agentId of ['old', 'new']) enqueue(state, { agentId, priority: 5 });
    admitWaiting(state, NOW - 60_000);
    state.holders[1]!.since = NOW - 5_000;
    state.holders.push({ agentId: 'from-an-older-state', hostId: 'a' });
    expect(holdersToCheck(state, NOW, 30_000)).toEqual(['old', 'from-an-older-state']);
  });
});
