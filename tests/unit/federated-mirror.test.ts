import type { FederatedSpawnInput, RemoteAgentEvent } from '../../workflows/federated-spawn/contract';
import {
  mirrorUpdate,
  named,
  newMirror,
  reached,
  receiveEvent,
  requestKill,
  resumeOf,
  unreached,
} from '../../workflows/federated-spawn/mirror';
import { hubVerdict, pause } from '../../workflows/federated-spawn/outcomes';

const input: FederatedSpawnInput = {
  agentId: 'a1',
  workspaceId: 'w',
  remote: { connectionId: 'c', instanceId: 'i', name: 'spoke' },
  spawnMessageId: 'm',
  payload: { taskId: 't', agentType: 'worker', context: { repository: '/repo', branch: 'main', workItems: [] } },
  spawnedAt: '2026-12-04T10:00:00.000Z',
  pollIntervalSeconds: 30,
};
const at = (second: number): string => `2026-12-04T10:00:${String(second).padStart(2, '0')}.000Z`;
const event = (
  eventId: string,
  sequence: number,
  state: RemoteAgentEvent['state'],
  turn: number,
): RemoteAgentEvent => ({
  agentId: 'r1',
  spawnMessageId: 'm',
  eventId,
  sequence,
  state,
  startedAt: at(1),
  progress: { turn, lastTool: null, usage: { inputTokens: 0, outputTokens: 0 }, updatedAt: at(turn) },
  error: null,
  occurredAt: at(turn),
  receivedAt: at(turn),
});

describe('the hub mirror of a remote agent', () => {
  it('holds events until the agent is named, then applies them in sequence order, each once', () => {
    const mirror = newMirror(input, at(0));
    receiveEvent(mirror, event('e2', 2, 'running', 2), at(2));
    expect(mirror.status.progress).toBeNull();
    named(mirror, 'r1', 'queued', at(3));
    expect(mirror.status).toMatchObject({ state: 'running', following: 'following', progress: { turn: 2 } });
    receiveEvent(mirror, event('e1', 1, 'running', 1), at(4)); // older sequence: contact only
    receiveEvent(mirror, event('e2', 2, 'running', 2), at(5)); // duplicate id: dropped
    expect(mirror.status.progress?.turn).toBe(2);
    expect(mirror.lastSequence).toBe(2);
    receiveEvent(mirror, event('e3', 3, 'completed', 3), at(6));
    receiveEvent(mirror, event('e4', 4, 'running', 4), at(7)); // a terminal state is final
    expect(mirror.status.state).toBe('completed');
    expect(resumeOf(mirror, 99)).toMatchObject({
      lastSequence: 4,
      recentEventIds: ['e2', 'e1', 'e3', 'e4'],
      spawnUnanswered: false,
    });
  });

  it("counts the time the remote agent waits for an operator, which moves the hub's deadline", () => {
    const mirror = newMirror(input, at(0));
    named(mirror, 'r1', 'running', at(1));
    receiveEvent(mirror, event('e1', 1, 'input_required', 1), at(10));
    expect(mirror.status).toMatchObject({ state: 'input_required', waitingSince: at(10) });
    receiveEvent(mirror, event('e2', 2, 'running', 2), at(25));
    receiveEvent(mirror, event('e3', 3, 'paused', 3), at(30));
    receiveEvent(mirror, event('e4', 4, 'running', 4), at(35));
    expect(mirror.status).toMatchObject({ state: 'running', waitedMs: 20_000, waitingSince: null });
    // A wait the end cuts short counts up to the end.
    receiveEvent(mirror, event('e5', 5, 'input_required', 5), at(40));
    receiveEvent(mirror, event('e6', 6, 'killed', 6), at(41));
    expect(mirror.status).toMatchObject({ state: 'killed', waitedMs: 21_000, waitingSince: null });
  });

  it('never moves a state or the last contact backwards', () => {
    const mirror = newMirror(input, at(0));
    named(mirror, 'r1', 'running', at(5));
    const progress = { turn: 1, lastTool: null, usage: { inputTokens: 0, outputTokens: 0 }, updatedAt: at(1) };
    mirrorUpdate(mirror, { state: 'queued', startedAt: null, progress, error: null }, at(3), at(6));
    expect(mirror.status).toMatchObject({ state: 'running', lastContactAt: at(5) });
  });

  it('says since when the spoke is silent, and clears it the moment it answers', () => {
    const mirror = newMirror(input, at(0));
    named(mirror, 'r1', 'running', at(1));
    unreached(mirror, 'no answer', at(2));
    unreached(mirror, 'still no answer', at(3));
    expect(mirror.status).toMatchObject({ following: 'unreachable', unreachableSince: at(2), note: 'still no answer' });
    reached(mirror, at(4));
    expect(mirror.status).toMatchObject({
      following: 'following',
      unreachableSince: null,
      note: null,
      lastContactAt: at(4),
    });
  });

  it('takes the first kill only, and none once the agent ended', () => {
    const mirror = newMirror(input, at(0));
    requestKill(mirror, 'first', at(1));
    requestKill(mirror, 'second', at(2));
    expect(mirror.status.kill).toEqual({ reason: 'first', requestedAt: at(1), deliveredAt: null });
    expect(mirror.killDue).toBe(true);
    const ended = newMirror(input, at(0));
    ended.status.state = 'completed';
    requestKill(ended, 'late', at(1));
    expect(ended.status.kill).toBeNull();
  });

  it('pauses on a suspended connection, ends on a disconnected one, and gives its own verdict', () => {
    const mirror = newMirror(input, at(0));
    expect(pause(mirror, 'SUSPENDED')).toBeNull();
    expect(mirror.status.following).toBe('paused');
    expect(pause(mirror, 'DISCONNECTED')).toMatchObject({ state: 'failed', detail: 'connection disconnected' });
    expect(hubVerdict(mirror, 1000)).toMatchObject({ state: 'timed_out', detail: 'hub deadline' });
    requestKill(mirror, 'operator', at(1));
    expect(hubVerdict(mirror, 1000)).toMatchObject({ state: 'killed', detail: 'kill not confirmed' });
  });
});
