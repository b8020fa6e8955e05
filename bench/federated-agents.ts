import { tsToMs } from '@temporalio/common/lib/time';
import { containerNameFor } from '../sandbox-runtime/agent-containers';
import { bearer, federatedSpawnBody, type Link } from '../tests/helpers/federation';
import { request, type JsonResponse } from '../tests/helpers/http';
import type { ContainerEvents } from './docker-events';
import { acceptedAgentId, waitForRunningTool, waitForState, type BenchInstance } from './harness';
import { WORK } from './bench-model';
import { spawnProfile, type SpawnProfile } from './spawn-profile';

/** The spoke's id of an agent the hub spawned there, once the hub has verified the spoke's reply. */
async function remoteAgentOf(hub: BenchInstance, agentId: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const row = await hub.instance.prisma.federatedAgent.findUnique({ where: { agentId } });
    if (row?.remoteAgentId) return row.remoteAgentId;
    if (Date.now() > deadline) throw new Error(`the hub learned no remote agent id for ${agentId} within a minute`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The hub's steps before the spoke's own spawn, in order; the spoke's phases (SPAWN_PHASES) follow. */
export const FEDERATED_PHASES = [
  'hub: request → federatedSpawn started',
  'hub: workflow task → agent.spawn activity scheduled',
  'hub → spoke: the activity signs and sends; the spoke verifies and records the agent',
] as const;

type FederatedProfile = Record<(typeof FEDERATED_PHASES)[number], number> & SpawnProfile;

/**
 * Where one federated spawn's time went: the hub's workflow events, the spoke's agent row, then the spoke's own
 * spawn phases from the row's creation (all on this machine's clock).
 */
async function federatedProfile(
  hub: BenchInstance,
  spoke: BenchInstance,
  events: ContainerEvents,
  ids: { agentId: string; remoteAgentId: string },
  requestedAt: number,
  readyAt: number,
): Promise<FederatedProfile> {
  const history = (await hub.instance.temporal.workflow.getHandle(ids.agentId).fetchHistory()).events ?? [];
  const timeOf = (match: (event: (typeof history)[number]) => boolean): number => {
    const event = history.find(match);
    return event ? tsToMs(event.eventTime) : NaN;
  };
  const started = timeOf((event) => Boolean(event.workflowExecutionStartedEventAttributes));
  const sendScheduled = timeOf(
    (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'sendCommand',
  );
  const remote = await spoke.instance.prisma.agent.findUniqueOrThrow({
    where: { id: ids.remoteAgentId },
    select: { createdAt: true },
  });
  const recordedAt = remote.createdAt.getTime();
  const onSpoke = await spawnProfile(
    spoke.instance.temporal,
    events,
    ids.remoteAgentId,
    containerNameFor(ids.remoteAgentId),
    recordedAt,
    readyAt,
  );
  return {
    'hub: request → federatedSpawn started': started - requestedAt,
    'hub: workflow task → agent.spawn activity scheduled': sendScheduled - started,
    'hub → spoke: the activity signs and sends; the spoke verifies and records the agent': recordedAt - sendScheduled,
    ...onSpoke,
  };
}

/**
 * Spawn and kill through a hub, one agent at a time: spawn (POST to the hub) → the sandbox ready on
 * the spoke (its state running committed there), and kill (POST to the hub) → the spoke's container
 * destroyed. Two instances on loopback, signed commands between them.
 */
export async function federatedSpawnKillRounds(
  hub: BenchInstance,
  spoke: BenchInstance,
  link: Link,
  events: ContainerEvents,
  repository: string,
  count: number,
  prefix: string,
): Promise<{ spawnToReadyMs: number[]; killToGoneMs: number[]; profiles: FederatedProfile[] }> {
  const asHub = (method: string, path: string, json?: unknown): Promise<JsonResponse> =>
    request(hub.instance.baseUrl, method, path, {
      headers: bearer(link.hubToken),
      ...(json === undefined ? {} : { json }),
    });
  const samples = { spawnToReadyMs: [] as number[], killToGoneMs: [] as number[], profiles: [] as FederatedProfile[] };
  for (let round = 0; round < count; round++) {
    const requestedAt = Date.now();
    const agentId = acceptedAgentId(
      await asHub(
        'POST',
        '/api/v1/federation/agents/spawn',
        federatedSpawnBody(link.hubConnectionId, `${prefix}-${round}`, repository, WORK.hold),
      ),
    );
    const remoteAgentId = await remoteAgentOf(hub, agentId);
    const readyAt = await waitForState(spoke.instance, remoteAgentId, 'running');
    samples.spawnToReadyMs.push(readyAt - requestedAt);
    await waitForRunningTool(spoke.instance, remoteAgentId);
    const killedAt = Date.now();
    const kill = await asHub('POST', `/api/v1/federation/agents/${agentId}/kill`);
    if (kill.status !== 202) throw new Error(`federated kill refused: ${kill.status} ${kill.text}`);
    samples.killToGoneMs.push((await events.waitFor(containerNameFor(remoteAgentId), 'destroy')) - killedAt);
    await waitForState(spoke.instance, remoteAgentId, 'killed');
    samples.profiles.push(await federatedProfile(hub, spoke, events, { agentId, remoteAgentId }, requestedAt, readyAt));
  }
  return samples;
}
