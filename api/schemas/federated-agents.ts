import { z } from 'zod';
import { AGENT_STATES, AGENT_TYPES } from '../../shared/vocabulary';
import {
  AgentResultPayloadSchema,
  FederatedSpawnRequestSchema,
  RemoteProgressSchema,
} from '../../shared/federated-agent-schemas';
import { FOLLOWING } from '../../workflows/federated-spawn/contract';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { AgentIdParams } from './agents';

/**
 * The federated agents endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
/**
 * The hub's endpoints for agents run on a peer instance (FED-010), answering in the federation API's
 * envelope `{success: true, data}`; errors are `{success: false, error: {code, message}}` as everywhere.
 */
const success = <T extends z.ZodType>(data: T) => z.object({ success: z.literal(true), data });

export const FederatedSpawnResponseSchema = z
  .object({ agentId: z.string(), state: z.enum(AGENT_STATES), spawnedAt: z.string(), existing: z.boolean() })
  .openapi('FederatedSpawnResponse');

export const FederatedAgentViewSchema = z
  .object({
    agentId: z.string(),
    taskId: z.string(),
    agentType: z.enum(AGENT_TYPES),
    /** The remote agent's state as mirrored by the hub (FED-010 calls it status). */
    status: z.enum(AGENT_STATES),
    spawnedAt: z.string(),
    startedAt: z.string().nullable(),
    progress: RemoteProgressSchema.nullable(),
    remoteInstance: z.object({ connectionId: z.string(), instanceId: z.string(), name: z.string(), url: z.string() }),
    remoteAgentId: z.string().nullable(),
    /** The last time the spoke answered; it never goes backwards. */
    lastContactAt: z.string().nullable(),
    /**
     * spawning (delivering the spawn), following, waiting (the kill is confirmed, the final state awaited),
     * unreachable (since unreachableSince), paused (the connection is not ACTIVE), worker_unavailable (the
     * hub's worker did not answer: the last recorded state is shown) or ended.
     */
    following: z.enum(FOLLOWING),
    unreachableSince: z.string().nullable(),
    /** Why following is paused, why a kill is not delivered yet, what the last failed contact said. */
    note: z.string().nullable(),
    kill: z.object({ reason: z.string(), requestedAt: z.string(), deliveredAt: z.string().nullable() }).nullable(),
    error: z.string().nullable(),
    finishedAt: z.string().nullable(),
    result: AgentResultPayloadSchema.nullable(),
  })
  .openapi('FederatedAgentStatus');
export type FederatedAgentView = z.infer<typeof FederatedAgentViewSchema>;

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/agents/spawn',
  summary:
    'Run an agent on a peer instance through a connection; the hub follows ' +
    'it to the end (options.timeout in milliseconds)',
  security: bearer,
  request: { body: { content: { 'application/json': { schema: FederatedSpawnRequestSchema } } } },
  responses: {
    202: jsonContent(success(FederatedSpawnResponseSchema), 'The spawn is on its way'),
    200: jsonContent(
      success(FederatedSpawnResponseSchema),
      'An agent for this task is still live through this connection; it is returned',
    ),
    400: errorResponse('The body is not valid'),
    403: errorResponse('The connection belongs to another workspace'),
    404: errorResponse('No such connection'),
    409: errorResponse('The connection is not ACTIVE, or another agent is live for the task'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/agents/{agentId}/status',
  summary: 'The mirrored state, remote progress, remote instance and time of last contact of an agent run on a peer',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    200: jsonContent(success(FederatedAgentViewSchema), 'The agent'),
    403: errorResponse('Another workspace’s agent'),
    404: errorResponse('No such federated agent'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/agents/{agentId}/kill',
  summary: 'Stop an agent run on a peer: the hub sends agent.kill and waits for the confirmation',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    202: jsonContent(success(z.object({ agentId: z.string(), state: z.literal('killing') })), 'The kill is on its way'),
    403: errorResponse('Another workspace’s agent'),
    404: errorResponse('No such federated agent'),
    409: errorResponse('The agent has already finished'),
  },
});
