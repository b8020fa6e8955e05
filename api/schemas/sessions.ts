import { z } from 'zod';
import { AGENT_STATES } from '../../shared/vocabulary';
import { SpawnSessionRequestSchema } from '../../shared/session-schemas';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { AgentEventSchema, AgentViewSchema } from './agents';

/**
 * The sessions endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
/**
 * The gateway API (seed ORCH-007): sessions are agent runs spawned from a gateway's task, reported to
 * its callback URL. Paths and payloads: POST /orchestrator/sessions/spawn {task, context, callback_url}.
 */
export const SessionIdParams = z.object({ id: z.string().regex(/^agent-[0-9a-f-]{36}$/, 'is not a session id') });
export const ListSessionsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) });

export const SpawnSessionResponseSchema = z
  .object({ sessionId: z.string(), state: z.enum(AGENT_STATES), existing: z.boolean() })
  .openapi('SessionSpawned');
export const SessionViewSchema = z
  .object({
    sessionId: z.string(),
    state: z.enum(AGENT_STATES),
    task: z.record(z.string(), z.unknown()),
    callback: z.object({ url: z.string(), audience: z.string(), deliveredSequence: z.number().int() }).nullable(),
    agent: AgentViewSchema,
  })
  .openapi('Session');
export const SessionListSchema = z
  .object({
    sessions: z.array(
      z.object({
        sessionId: z.string(),
        taskId: z.string(),
        agentType: z.string(),
        state: z.enum(AGENT_STATES),
        runsOn: z.enum(['local', 'peer']),
        createdAt: z.string(),
        finishedAt: z.string().nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .openapi('SessionList');
export const GatewayHealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    temporal: z.enum(['up', 'down']),
    database: z.enum(['up', 'down']),
    docker: z.enum(['up', 'down']),
  })
  .openapi('GatewayHealth');

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerPath({
  method: 'post',
  path: '/orchestrator/sessions/spawn',
  summary:
    "Start a session: an agent run for a gateway's task, its lifecycle POSTed to callback_url (docs/sessions.md)",
  security: bearer,
  request: { body: { content: { 'application/json': { schema: SpawnSessionRequestSchema } } } },
  responses: {
    202: jsonContent(SpawnSessionResponseSchema, 'The session started'),
    200: jsonContent(
      SpawnSessionResponseSchema,
      "The task's session is still live; it is returned and nothing new starts",
    ),
    400: errorResponse('The body is not valid (the message names the field), or callback_url is not allowed'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions',
  summary: "The workspace's sessions, newest first",
  security: bearer,
  request: { query: ListSessionsQuery },
  responses: { 200: jsonContent(SessionListSchema, 'Sessions') },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions/{id}/status',
  summary: "The session: its task, its callback's progress and its agent's status",
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    200: jsonContent(SessionViewSchema, 'The session'),
    403: errorResponse('Another workspace'),
    404: errorResponse('No such session'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/orchestrator/sessions/{id}/kill',
  summary: 'Hard termination: the run is cancelled and its container removed within seconds, even mid-tool',
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    202: jsonContent(z.object({ sessionId: z.string(), status: z.literal('killing') }), 'Killing'),
    404: errorResponse('No such session'),
    409: errorResponse('Already finished'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/sessions/{id}/events',
  summary:
    "The session's Server-Sent Events (as GET /agents/{agentId}/events): " +
    'resumable with Last-Event-ID, ends after the final state',
  security: bearer,
  request: { params: SessionIdParams },
  responses: {
    200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: AgentEventSchema } } },
    404: errorResponse('No such session'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/orchestrator/health',
  summary: 'Whether Temporal, the database and Docker answer',
  responses: {
    200: jsonContent(GatewayHealthSchema, 'All up'),
    503: jsonContent(GatewayHealthSchema, 'Something is down'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/.well-known/jwks.json',
  summary: "The keys that sign session callbacks' tokens (JWK Set, EdDSA)",
  responses: { 200: { description: 'JWK Set' } },
});
