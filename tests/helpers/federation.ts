import { issueAdminToken, issueApiToken } from '../../api/auth';
import { randomUUID } from 'node:crypto';
import { INCOMING_COMMAND_PATH } from '../../federation/client';
import { signingKey } from '../../federation/identity';
import { signRequest, type CommandEnvelope } from '../../federation/messages';
import { request, type JsonResponse } from './http';
import type { TestInstance } from './instance';

/** Two instances linked by an ACTIVE connection, with an API token of a workspace on each side. */
export interface Link {
  hubToken: string;
  spokeToken: string;
  /** Instance administrator tokens (key rotation, accepting and rejecting peers' requests). */
  hubAdminToken: string;
  spokeAdminToken: string;
  hubWorkspaceId: string;
  spokeWorkspaceId: string;
  /** The hub's connection to the spoke. */
  hubConnectionId: string;
  /** The spoke's connection to the hub. */
  spokeConnectionId: string;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/**
 * The README's walkthrough: the hub asks, the spoke's administrator accepts into a workspace (all three agent commands
 * allowed).
 */
export async function linkInstances(hub: TestInstance, spoke: TestInstance, spokeUrl = spoke.baseUrl): Promise<Link> {
  const hubSide = await issueApiToken(hub.prisma, `hub-${Date.now()}-${Math.random()}`);
  const spokeWorkspace = `spoke-${Date.now()}-${Math.random()}`;
  const spokeSide = await issueApiToken(spoke.prisma, spokeWorkspace);
  const hubAdminToken = (await issueAdminToken(hub.prisma)).token;
  const spokeAdminToken = (await issueAdminToken(spoke.prisma)).token;
  const requested = await request(hub.baseUrl, 'POST', '/api/v1/federation/connections', {
    headers: bearer(hubSide.token),
    json: { peerUrl: spokeUrl },
  });
  if (requested.status !== 201) throw new Error(`connection request failed: ${requested.status} ${requested.text}`);
  const hubConnectionId = (requested.body as { id: string }).id;
  const hubInstanceId = hub.identity.current().instanceId;
  const pending = await spoke.prisma.federationConnection.findUniqueOrThrow({
    where: { peerInstanceId: hubInstanceId },
  });
  const accepted = await request(spoke.baseUrl, 'POST', `/api/v1/federation/connections/${pending.id}/accept`, {
    headers: bearer(spokeAdminToken),
    // The tests' repositories are local folders: the spoke lets this hub's agents clone them.
    json: {
      workspace: spokeWorkspace,
      allowedCommandTypes: ['agent.spawn', 'agent.status', 'agent.kill'],
      allowLocalRepositories: true,
    },
  });
  if (accepted.status !== 200) throw new Error(`accept failed: ${accepted.status} ${accepted.text}`);
  return {
    hubToken: hubSide.token,
    spokeToken: spokeSide.token,
    hubAdminToken,
    spokeAdminToken,
    hubWorkspaceId: hubSide.workspaceId,
    spokeWorkspaceId: spokeSide.workspaceId,
    hubConnectionId,
    spokeConnectionId: pending.id,
  };
}

/** The body of POST /api/v1/federation/agents/spawn: a worker on `repository`'s main branch with one work item. */
export function federatedSpawnBody(
  connectionId: string,
  taskId: string,
  repository: string,
  workItem = 'Do the work',
  options: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    connectionId,
    taskId,
    agentType: 'worker',
    context: { repository, branch: 'main', workItems: [workItem] },
    options: { maxRetries: 2, ...options },
  };
}

/** Asks the hub to run an agent on the spoke. */
export function spawnThroughHub(
  hub: TestInstance,
  link: Link,
  spawn: { taskId: string; repository: string; workItem: string; options?: Record<string, unknown> },
): Promise<JsonResponse> {
  return request(hub.baseUrl, 'POST', '/api/v1/federation/agents/spawn', {
    headers: bearer(link.hubToken),
    json: federatedSpawnBody(link.hubConnectionId, spawn.taskId, spawn.repository, spawn.workItem, spawn.options),
  });
}

/** The hub's agentId of a spawn it accepted (202). */
export function spawnedAgentId(response: JsonResponse): string {
  expect(response.status).toBe(202);
  return (response.body as { data: { agentId: string } }).data.agentId;
}

/** A COMMAND from `from` to `to`, signed with `from`'s current key, sent as it is (no workflow, no retry). */
export function sendSignedCommand(
  from: TestInstance,
  to: TestInstance,
  envelope: Pick<CommandEnvelope, 'commandType' | 'payload'> & Partial<CommandEnvelope>,
): Promise<JsonResponse> {
  const nonce = randomUUID().replace(/-/g, '');
  const body = JSON.stringify({
    messageId: randomUUID(),
    instanceId: from.identity.current().instanceId,
    timestamp: new Date().toISOString(),
    nonce,
    ...envelope,
  });
  const signed = signRequest(
    `${to.baseUrl}${INCOMING_COMMAND_PATH}`,
    Buffer.from(body),
    signingKey(from.identity.current()),
    Date.now(),
    nonce,
  );
  return request(to.baseUrl, 'POST', INCOMING_COMMAND_PATH, { rawBody: body, headers: signed.headers });
}
