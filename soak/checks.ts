import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { AGENT_LABEL } from '../sandbox-runtime/agent-containers';
import type { PrismaClient } from '../prisma/client';
import { TERMINAL_STATES } from '../shared/vocabulary';
import type { SessionCallbackBody } from '../workflows/session-callbacks/contract';
import type { LoadRecord } from './load';
import type { Side, Topology } from './topology';

/** Runs `look` every `intervalMs` until stopped; errors (a service that is down) skip a sample. */
export function sampler(look: () => Promise<void>, intervalMs: number): { stop(): Promise<void> } {
  const state = { on: true };
  const done = (async () => {
    while (state.on) {
      await look().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      state.on = false;
      await done;
    },
  };
}

/** Agents that had two sandboxes at once, from a listing of every agent container every 200 ms. */
export function watchDuplicateSandboxes(docker: Docker): {
  agents: Set<string>;
  samples: () => number;
  stop(): Promise<void>;
} {
  const agents = new Set<string>();
  let samples = 0;
  const running = sampler(async () => {
    const containers = await docker.listContainers({ all: true, filters: { label: [AGENT_LABEL] } });
    const perAgent = new Map<string, number>();
    for (const container of containers) {
      const agentId = container.Labels[AGENT_LABEL] ?? '';
      perAgent.set(agentId, (perAgent.get(agentId) ?? 0) + 1);
    }
    for (const [agentId, count] of perAgent) if (count > 1) agents.add(agentId);
    samples += 1;
  }, 200);
  return { agents, samples: () => samples, stop: () => running.stop() };
}

/** The most resident memory any worker process had, sampled every 5 s. */
export function watchWorkerMemory(topology: Topology): { worstMb: () => number; stop(): Promise<void> } {
  let worst = 0;
  const running = sampler(async () => {
    for (const worker of [...topology.hub.workers, ...topology.spoke.workers]) {
      const rss = await worker.rssMb();
      if (Number.isFinite(rss)) worst = Math.max(worst, rss);
    }
  }, 5_000);
  return { worstMb: () => Math.round(worst), stop: () => running.stop() };
}

const unfinished = (prisma: PrismaClient): Promise<number> =>
  prisma.agent.count({ where: { state: { notIn: [...TERMINAL_STATES] } } });

/** Waits until every agent on both instances has ended, or `timeoutMs` passed. */
export async function settle(topology: Topology, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = (await unfinished(topology.hub.instance.prisma)) + (await unfinished(topology.spoke.instance.prisma));
    if (open === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

export interface RowCounts {
  events: number;
  transcriptMessages: number;
  toolCalls: number;
  federationCommands: number;
  federationEvents: number;
  nonces: number;
  /** Rows the retention should have removed by now (older than the retention plus a slack of three prune intervals). */
  pastRetention: number;
}

async function rowCounts(prisma: PrismaClient, retentionHours: number): Promise<RowCounts> {
  const before = new Date(Date.now() - retentionHours * 3600_000 - 3 * 60_000);
  const [events, transcriptMessages, toolCalls, federationCommands, federationEvents, nonces] = await Promise.all([
    prisma.agentEvent.count(),
    prisma.agentMessage.count(),
    prisma.toolCall.count(),
    prisma.federationCommand.count(),
    prisma.federationEvent.count(),
    prisma.federationNonce.count(),
  ]);
  const old = await prisma.$queryRaw<Array<{ rows: bigint }>>`
    SELECT (SELECT count(*) FROM agent_messages m JOIN agents a ON a.id = m.agent_id WHERE a.finished_at < ${before})
         + (SELECT count(*) FROM tool_calls c JOIN agents a ON a.id = c.agent_id WHERE a.finished_at < ${before})
         + (SELECT count(*) FROM federation_commands WHERE created_at < ${before})
         + (SELECT count(*) FROM federation_events WHERE created_at < ${before})
         + (SELECT count(*) FROM agent_events e JOIN agents a ON a.id = e.agent_id WHERE a.finished_at < ${before}
              AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.agent_id = a.id AND s.callback_url IS NOT NULL
                AND s.delivered_seq < (SELECT max(seq) FROM agent_events m WHERE m.agent_id = a.id))) AS rows`;
  return {
    events,
    transcriptMessages,
    toolCalls,
    federationCommands,
    federationEvents,
    nonces,
    pastRetention: Number(old[0]?.rows ?? 0),
  };
}

const statesOf = async (prisma: PrismaClient): Promise<Record<string, number>> =>
  Object.fromEntries(
    (await prisma.agent.groupBy({ by: ['state'], _count: true })).map((group) => [group.state, group._count]),
  );

/** Filesystems still mounted under an instance's data folder (a workspace its teardown left mounted). */
async function mountsUnder(side: Side): Promise<number> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').filter((line) => line.split(' ')[1]?.startsWith(side.instance.dataDir)).length;
}

/**
 * Whether a session's callbacks arrived as a receiver relies on: first deliveries in sequence order,
 * every sequence from 1 to the last without a gap, the last one the agent's final state.
 */
export function judgeCallbacks(events: SessionCallbackBody[]): {
  inOrder: boolean;
  gapless: boolean;
  finished: boolean;
} {
  const firsts: number[] = [];
  const seen = new Set<string>();
  for (const event of events) {
    if (seen.has(event.eventId)) continue;
    seen.add(event.eventId);
    firsts.push(event.sequence);
  }
  const inOrder = firsts.every((sequence, index) => index === 0 || sequence > (firsts[index - 1] ?? 0));
  const sorted = [...firsts].sort((a, b) => a - b);
  const gapless = sorted.every((sequence, index) => sequence === index + 1);
  const last = events.find((event) => event.sequence === sorted.at(-1));
  const finished = TERMINAL_STATES.includes((last?.data as { state?: string } | undefined)?.state as never);
  return { inOrder, gapless, finished };
}

export interface SoakFindings {
  hubStates: Record<string, number>;
  spokeStates: Record<string, number>;
  /** Accepted spawns (202) with no agent on the hub. */
  lost: number;
  /** Agents on either side that had not ended when the soak gave up waiting. */
  stuck: number;
  /**
   * Runs whose two sides disagree: a spoke agent whose hub record ended otherwise (or is missing), or a
   * hub record ended completed with no spoke agent.
   */
  orphaned: number;
  duplicateSandboxes: number;
  leftoverContainers: number;
  leftoverMounts: number;
  callbacks: { sessions: number; outOfOrder: number; gaps: number; unfinished: number; refusals: number };
  sse: { streams: number; gaps: number; unfinished: number; reconnects: number };
  unknownToolOutcomes: number;
  rows: { hub: RowCounts; spoke: RowCounts };
}

async function orphanedRuns(topology: Topology): Promise<number> {
  const hub = topology.hub.instance.prisma;
  const spoke = topology.spoke.instance.prisma;
  const federated = await hub.federatedAgent.findMany({
    select: { spawnMessageId: true, agent: { select: { state: true } } },
  });
  const remote = await spoke.agent.findMany({
    where: { originMessageId: { not: null } },
    select: { originMessageId: true, state: true },
  });
  const remoteByMessage = new Map(remote.map((agent) => [agent.originMessageId ?? '', agent.state]));
  const hubByMessage = new Map(federated.map((agent) => [agent.spawnMessageId, agent.agent.state]));
  let orphaned = 0;
  for (const [messageId, state] of remoteByMessage) if (hubByMessage.get(messageId) !== state) orphaned += 1;
  for (const [messageId, state] of hubByMessage)
    if (!remoteByMessage.has(messageId) && state === 'completed') orphaned += 1;
  return orphaned;
}

export async function collectFindings(
  topology: Topology,
  load: LoadRecord,
  duplicates: Set<string>,
  retentionHours: number,
): Promise<SoakFindings> {
  const { hub, spoke, receiver } = topology;
  const hubIds = new Set((await hub.instance.prisma.agent.findMany({ select: { id: true } })).map((agent) => agent.id));
  const sessions = load.accepted.filter((spawned) => spawned.kind === 'session');
  const judged = sessions.map((session) =>
    judgeCallbacks(receiver.accepted.filter((event) => event.sessionId === session.agentId)),
  );
  const sseGaps = load.watched.filter((watched) => !watched.ids.every((id, index) => id === index + 1)).length;
  const containers = await hub.instance.docker
    .listContainers({ all: true, filters: { label: [AGENT_LABEL] } })
    .catch(() => []);
  return {
    hubStates: await statesOf(hub.instance.prisma),
    spokeStates: await statesOf(spoke.instance.prisma),
    lost: load.accepted.filter((spawned) => !hubIds.has(spawned.agentId)).length,
    stuck: (await unfinished(hub.instance.prisma)) + (await unfinished(spoke.instance.prisma)),
    orphaned: await orphanedRuns(topology),
    duplicateSandboxes: duplicates.size,
    leftoverContainers: containers.length,
    leftoverMounts: (await mountsUnder(hub)) + (await mountsUnder(spoke)),
    callbacks: {
      sessions: sessions.length,
      outOfOrder: judged.filter((verdict) => !verdict.inOrder).length,
      gaps: judged.filter((verdict) => !verdict.gapless).length,
      unfinished: judged.filter((verdict) => !verdict.finished).length,
      refusals: receiver.refusals.length,
    },
    sse: {
      streams: load.watched.length,
      gaps: sseGaps,
      unfinished: load.watched.filter((watched) => watched.finalState === null).length,
      reconnects: load.watched.reduce((sum, watched) => sum + watched.reconnects, 0),
    },
    unknownToolOutcomes:
      (await hub.instance.prisma.toolCall.count({ where: { status: 'unknown' } })) +
      (await spoke.instance.prisma.toolCall.count({ where: { status: 'unknown' } })),
    rows: {
      hub: await rowCounts(hub.instance.prisma, retentionHours),
      spoke: await rowCounts(spoke.instance.prisma, retentionHours),
    },
  };
}
