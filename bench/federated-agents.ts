import { containerNameFor } from '../sandbox-runtime/agent-containers';
import { bearer, federatedSpawnBody, type Link } from '../tests/helpers/federation';
import { request, type JsonResponse } from '../tests/helpers/http';
import type { ContainerEvents } from './docker-events';
import { acceptedAgentId, waitForRunningTool, waitForState, type BenchInstance } from './harness';
import { WORK } from './bench-model';

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
): Promise<{ spawnToReadyMs: number[]; killToGoneMs: number[] }> {
  const asHub = (method: string, path: string, json?: unknown): Promise<JsonResponse> =>
    request(hub.instance.baseUrl, method, path, {
      headers: bearer(link.hubToken),
      ...(json === undefined ? {} : { json }),
    });
  const samples = { spawnToReadyMs: [] as number[], killToGoneMs: [] as number[] };
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
  }
  return samples;
}
