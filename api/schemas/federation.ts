import { z } from 'zod';
import { CONNECTION_ACTIONS } from '../../domain/connections/connection-service';
import { COMMAND_TYPES, PublicIdentitySchema } from '../../federation/messages';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';

/**
 * The federation endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
// The document's copy of the identity schema (federation/ defines it without the OpenAPI extension).
const InstanceIdentitySchema = z.object(PublicIdentitySchema.shape).openapi('InstanceIdentity');

const CommandTypes = z.array(z.enum(COMMAND_TYPES)).max(COMMAND_TYPES.length);
export const CreateConnectionSchema = z
  .strictObject({ peerUrl: z.url({ protocol: /^https?$/ }), allowedCommandTypes: CommandTypes.default([]) })
  .openapi('CreateConnection');
export const AcceptConnectionSchema = z
  .strictObject({
    /** The workspace (by name) the connection will belong to. */
    workspace: z.string().min(1).max(200),
    allowedCommandTypes: CommandTypes.default([...COMMAND_TYPES]),
    /** Whether the peer's agents may clone local paths (under REPOSITORY_LOCAL_ROOTS); off unless asked for. */
    allowLocalRepositories: z.boolean().default(false),
  })
  .openapi('AcceptConnection');
export const SendCommandSchema = z
  .strictObject({
    connectionId: z.uuid(),
    commandType: z.enum(COMMAND_TYPES),
    payload: z.record(z.string(), z.unknown()),
  })
  .openapi('SendCommand');
export const RotateKeysSchema = z.strictObject({
  overlapSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
});
export const IdParams = z.object({ id: z.uuid() });

openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/instance',
  summary: "This instance's public identity and keys",
  responses: { 200: jsonContent(InstanceIdentitySchema, 'The identity') },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/incoming/command',
  summary: 'A signed COMMAND from a connected peer (RFC 9421, see docs/federation-protocol.md)',
  responses: {
    200: { description: 'A signed reply' },
    400: errorResponse('Malformed'),
    401: errorResponse('Not authenticated'),
    403: errorResponse('Not allowed'),
    409: errorResponse('Replay'),
    413: errorResponse('Too large'),
    415: errorResponse('Not JSON'),
    429: errorResponse('Rate limited'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/incoming/event',
  summary: 'A signed agent.lifecycle EVENT from a peer that runs an agent for this instance',
  responses: {
    200: { description: 'A signed acknowledgement' },
    400: errorResponse('Malformed'),
    401: errorResponse('Not authenticated'),
    403: errorResponse('Not allowed'),
    404: errorResponse('No such agent spawned through this connection'),
    409: errorResponse('Replay'),
    429: errorResponse('Rate limited'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/connections',
  summary: "The workspace's connections (the administrator's: every connection, pending requests included)",
  security: [{ bearerAuth: [] }],
  responses: { 200: { description: 'Connections' }, 401: errorResponse('No valid API token') },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/connections',
  summary: 'Ask a peer for a connection',
  security: [{ bearerAuth: [] }],
  request: { body: { content: { 'application/json': { schema: CreateConnectionSchema } } } },
  responses: { 201: { description: 'Pending connection' }, 502: errorResponse('The peer refused or did not answer') },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/keys/rotate',
  summary:
    "Rotate this instance's signing key (administrator): peers are told, the old key stays valid for overlapSeconds",
  security: [{ bearerAuth: [] }],
  request: { body: { content: { 'application/json': { schema: RotateKeysSchema } } } },
  responses: {
    200: { description: 'The new public identity and the peers notified' },
    403: errorResponse('Not an administrator'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/federation/command',
  summary: 'Send a signed command to a connected peer',
  security: [{ bearerAuth: [] }],
  request: { body: { content: { 'application/json': { schema: SendCommandSchema } } } },
  responses: { 200: { description: 'The recorded command with the verified reply' } },
});
for (const action of CONNECTION_ACTIONS) {
  openApiRegistry.registerPath({
    method: 'post',
    path: `/api/v1/federation/connections/{id}/${action}`,
    summary: `${action} a connection (the peer is told, signed)`,
    security: [{ bearerAuth: [] }],
    request: { params: IdParams },
    responses: { 200: { description: 'The connection' } },
  });
}
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/commands',
  summary: 'Commands that came and went',
  security: [{ bearerAuth: [] }],
  responses: { 200: { description: 'Commands' } },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/events',
  summary: 'Lifecycle events received from peers about agents run there (accepted, duplicate or rejected)',
  security: [{ bearerAuth: [] }],
  responses: { 200: { description: 'Events' } },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/federation/commands/{id}',
  summary: 'One command: direction, type, status, reply, error, timings',
  security: [{ bearerAuth: [] }],
  request: { params: IdParams },
  responses: { 200: { description: 'The command' } },
});

/** The messageId a signed body names, for the request's log line (read again, untrusted, only for that). */
