import { isTerminalState } from '../shared/vocabulary';
import { bearer, federatedSpawnBody } from '../tests/helpers/federation';
import { request } from '../tests/helpers/http';
import { readSse } from '../tests/helpers/sse';
import type { Random } from './random';
import { WORK_ITEMS, type Topology } from './topology';

/** How an agent came in: a session with a callback, a local spawn followed over SSE, or a spawn sent to the spoke. */
export type AgentKind = 'session' | 'local' | 'federated';
export const AGENT_KINDS: readonly AgentKind[] = ['session', 'local', 'federated'];

export interface Spawned {
  kind: AgentKind;
  /** The hub's id of the agent (for a federated one, the hub's record of it). */
  agentId: string;
  workItem: string;
}

/** What one SSE watcher saw of its agent's stream, across reconnects. */
export interface Watched {
  agentId: string;
  ids: number[];
  finalState: string | null;
  reconnects: number;
}

export interface LoadRecord {
  accepted: Spawned[];
  /** Spawns answered other than 202 (an API restarting, PostgreSQL down): the client knows, nothing is owed. */
  refused: Map<string, number>;
  watched: Watched[];
}

const SPAWN_TIMEOUT_MS = 30_000;

/** Follows an agent's event stream to its end, resuming with Last-Event-ID after every break. */
async function watch(baseUrl: string, token: string, agentId: string, stop: AbortSignal): Promise<Watched> {
  const seen: Watched = { agentId, ids: [], finalState: null, reconnects: 0 };
  while (!stop.aborted) {
    const last = seen.ids.at(-1);
    const headers = { ...bearer(token), ...(last !== undefined ? { 'last-event-id': String(last) } : {}) };
    try {
      const { events } = await readSse(`${baseUrl}/agents/${agentId}/events`, headers, Infinity, stop);
      for (const event of events) {
        if (event.id === null) continue; // live model progress, not part of the log
        seen.ids.push(Number(event.id));
        // {agentId, seq, type, at, data}: a state change carries its state in data.
        const { data } = JSON.parse(event.data) as { data?: { type?: string; state?: string } };
        if (data?.type === 'state' && isTerminalState(data.state)) seen.finalState = data.state;
      }
      // Only the final state ends a watch: a stream the API closed as it restarted looks ended too.
      if (seen.finalState !== null) return seen;
    } catch {
      // The API restarted or the connection broke: resume from the last id.
    }
    seen.reconnects += 1;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  return seen;
}

/**
 * Spawns one agent every `paceMs` (kinds and work items drawn from `random`) until `until`, as a
 * gateway and operators would, and follows every local and federated agent over SSE. Resolves once
 * the spawning ended and every watcher ended (or `stop` aborted them).
 */
export async function runLoad(
  topology: Topology,
  random: Random,
  pace: { paceMs: number; until: number },
  stop: AbortSignal,
): Promise<LoadRecord> {
  const { hub, link, receiver, audience, repository, hubToken } = topology;
  const record: LoadRecord = { accepted: [], refused: new Map(), watched: [] };
  const watchers: Array<Promise<void>> = [];
  const refuse = (reason: string): void => {
    record.refused.set(reason, (record.refused.get(reason) ?? 0) + 1);
  };
  const spawnOne = async (n: number): Promise<void> => {
    const kind = random.pick(AGENT_KINDS);
    const workItem = random.pick(WORK_ITEMS);
    const taskId = `soak-${n}`;
    const context = { repository, branch: 'main', workItems: [workItem] };
    const spawn =
      kind === 'session'
        ? request(hub.directUrl, 'POST', '/orchestrator/sessions/spawn', {
            headers: bearer(hubToken),
            json: {
              task: { id: taskId, title: `Soak ${n}`, repository, branch: 'main', workItems: [workItem] },
              callback_url: receiver.url,
              callback_audience: audience,
            },
            timeoutMs: SPAWN_TIMEOUT_MS,
          })
        : kind === 'local'
          ? request(hub.directUrl, 'POST', '/agents/spawn', {
              headers: bearer(hubToken),
              json: { taskId, agentType: 'worker', context },
              timeoutMs: SPAWN_TIMEOUT_MS,
            })
          : request(hub.directUrl, 'POST', '/api/v1/federation/agents/spawn', {
              headers: bearer(link.hubToken),
              // Enough delivery attempts to outlast a 60 s cut of the link.
              json: federatedSpawnBody(link.hubConnectionId, taskId, repository, workItem, { maxRetries: 6 }),
              timeoutMs: SPAWN_TIMEOUT_MS,
            });
    const response = await spawn.catch((error: unknown) => ({
      status: 0,
      body: null,
      text: error instanceof Error ? error.name : String(error),
    }));
    if (response.status !== 202) {
      refuse(response.status === 0 ? `no answer (${response.text})` : `HTTP ${response.status}`);
      return;
    }
    const body = response.body as { agentId?: string; sessionId?: string; data?: { agentId: string } };
    const agentId = body.data?.agentId ?? body.agentId ?? body.sessionId;
    if (!agentId) throw new Error(`a 202 without an agent id: ${response.text}`);
    record.accepted.push({ kind, agentId, workItem });
    if (kind !== 'session') {
      const token = kind === 'local' ? hubToken : link.hubToken;
      watchers.push(watch(hub.directUrl, token, agentId, stop).then((watched) => void record.watched.push(watched)));
    }
  };

  const spawns: Array<Promise<void>> = [];
  for (let n = 1; Date.now() < pace.until && !stop.aborted; n++) {
    spawns.push(spawnOne(n));
    await new Promise((resolve) => setTimeout(resolve, pace.paceMs));
  }
  await Promise.all(spawns);
  await Promise.all(watchers);
  return record;
}
