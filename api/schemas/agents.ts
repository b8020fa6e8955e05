import { z } from 'zod';
import {
  AgentMessageRequestSchema,
  ApprovalDecisionRequestSchema,
  ContinueAgentRequestSchema,
  SpawnAgentRequestSchema,
} from '../../shared/agent-schemas';
import {
  AgentIdSchema,
  AgentResultPayloadSchema,
  PendingApprovalSchema,
  ToolCallIdSchema,
} from '../../shared/federated-agent-schemas';
import { AGENT_STATES, AGENT_TYPES } from '../../shared/vocabulary';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';

/**
 * The agents endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
export const AgentIdParams = z.object({ agentId: AgentIdSchema });
/** A tool call's id as the model wrote it (toolu_…): letters, digits, dashes and underscores. */
export const ToolCallParams = z.object({ agentId: AgentIdSchema, toolCallId: ToolCallIdSchema });

export const SpawnAgentResponseSchema = z
  .object({ agentId: z.string(), status: z.enum(['spawning', 'queued', ...AGENT_STATES]), existing: z.boolean() })
  .openapi('SpawnAgentResponse');

export const AgentViewSchema = z
  .object({
    agentId: z.string(),
    taskId: z.string(),
    agentType: z.enum(AGENT_TYPES),
    state: z.enum(AGENT_STATES),
    turn: z.number().int(),
    lastTool: z.string().nullable(),
    usage: z.object({
      inputTokens: z.number().int(),
      outputTokens: z.number().int(),
      cacheCreationInputTokens: z.number().int(),
      cacheReadInputTokens: z.number().int(),
    }),
    /** The estimated cost in USD from the worker's price table (MODEL_PRICES); null when the model has no price. */
    costUsd: z.number().nullable(),
    /** Set once older tool results were cleared to keep the model's requests within its context window. */
    contextManagement: z
      .object({
        clearings: z.number().int(),
        clearedToolResults: z.number().int(),
        lastClearedAtTurn: z.number().int(),
      })
      .nullable(),
    /** While the model's reply streams: the text so far and the tool whose input it is writing. */
    modelProgress: z
      .object({
        turn: z.number().int(),
        text: z.string(),
        textLength: z.number().int(),
        tool: z.string().nullable(),
        toolInputCharacters: z.number().int(),
        at: z.string(),
      })
      .nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    /** Set for an agent that runs on a peer instance. */
    remoteInstance: z.object({ connectionId: z.string(), instanceId: z.string(), name: z.string() }).nullable(),
    remoteAgentId: z.string().nullable(),
    result: AgentResultPayloadSchema.nullable().optional(),
    /** The tool call that waits for an operator's decision (state input_required), while the run is live. */
    pendingApproval: PendingApprovalSchema.nullable().optional(),
    /** A follow-up: the agent it continues; and the follow-ups of this one (where one agent is shown). */
    parentAgentId: z.string().nullable(),
    followUps: z.array(z.string()).optional(),
    /** An operator asked for a pause (state paused once it took effect). */
    pauseRequested: z.boolean().optional(),
    /** Operator messages accepted, and how many already reached the model. */
    messages: z.object({ received: z.number().int(), delivered: z.number().int() }).optional(),
  })
  .openapi('Agent');
export type AgentView = z.infer<typeof AgentViewSchema>;

export const ListAgentsQuerySchema = z.strictObject({
  state: z.enum(AGENT_STATES).optional(),
  taskId: z.string().max(128).optional(),
  agentType: z.enum(AGENT_TYPES).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

/** One event of an agent's log, as the SSE stream and the callbacks send it. */
export const AgentEventSchema = z
  .object({
    agentId: z.string(),
    seq: z.number().int().min(1),
    type: z.enum(['state', 'turn', 'progress', 'context', 'tool', 'result', 'delivery', 'message', 'approval']),
    at: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('AgentEvent');

export const AgentListSchema = z
  .object({ agents: z.array(AgentViewSchema), nextCursor: z.string().nullable() })
  .openapi('AgentList');

const bearer = [{ bearerAuth: [] }];
openApiRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/spawn',
  summary: 'Start an agent on a task (a second spawn for a task whose agent is live returns that agent)',
  security: bearer,
  request: { body: { content: { 'application/json': { schema: SpawnAgentRequestSchema } } } },
  responses: {
    202: jsonContent(SpawnAgentResponseSchema, 'The agent was started'),
    200: jsonContent(
      SpawnAgentResponseSchema,
      'An agent for this task is still live; it is returned and nothing new starts',
    ),
    400: errorResponse('The body is not valid'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents',
  summary: "The workspace's agents, newest first, with filters and cursor pagination",
  security: bearer,
  request: { query: ListAgentsQuerySchema },
  responses: {
    200: jsonContent(AgentListSchema, 'A page of agents'),
    400: errorResponse('Bad filter or cursor'),
    401: errorResponse('No valid API token'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/status',
  summary: 'State, turn, last tool, token usage, times, error and (when finished) the result',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    200: jsonContent(AgentViewSchema, 'The agent'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/result.bundle',
  summary:
    'The result branch agent/<agentId> as a git bundle from its base commit: ' +
    '`git fetch <file> agent/<agentId>` in a clone of the repository brings the commit',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    200: {
      description: 'The bundle (header X-Commit-Sha: the commit of its one branch)',
      content: { 'application/x-git-bundle': { schema: { type: 'string', format: 'binary' } } },
    },
    401: errorResponse('No valid API token'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent (not_found), no changes (no_changes), or no bundle was stored (no_bundle)'),
    409: errorResponse('The agent has not finished (not_finished)'),
    410: errorResponse('The retention removed the bundle with the workspace (pruned)'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/agents/{agentId}/events',
  summary:
    'Server-Sent Events of the run: state changes, model turns, tool calls ' +
    "with exit codes, the result. Each SSE id is the event's sequence " +
    'number; reconnect with Last-Event-ID (or ?lastEventId=) to resume. ' +
    'Ends after the final state (with ?follow=false: once caught up).',
  security: bearer,
  request: { params: AgentIdParams, headers: z.object({ 'last-event-id': z.string().optional() }) },
  responses: {
    200: {
      description: 'text/event-stream of AgentEvent objects (data: JSON)',
      content: { 'text/event-stream': { schema: AgentEventSchema } },
    },
    400: errorResponse('Last-Event-ID is not a sequence number'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/{agentId}/kill',
  summary: 'Stop the agent: its run is cancelled and its sandbox removed',
  security: bearer,
  request: { params: AgentIdParams },
  responses: {
    202: jsonContent(z.object({ agentId: z.string(), status: z.literal('killing') }), 'The kill signal was sent'),
    403: errorResponse('The agent belongs to another workspace'),
    404: errorResponse('No such agent'),
    409: errorResponse('The agent has already finished'),
  },
});

const steeringErrors = {
  400: errorResponse('The body is not valid'),
  401: errorResponse('No valid API token'),
  403: errorResponse('The agent belongs to another workspace'),
  404: errorResponse('No such agent'),
  409: errorResponse('The agent has already finished (already_finished)'),
};
export const MessageAcceptedSchema = z
  .object({ agentId: z.string(), position: z.number().int().min(1) })
  .openapi('MessageAccepted');
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/{agentId}/messages',
  summary:
    "Say something to a running agent: the message joins the model's conversation at the next turn " +
    '(after the tool results of the turn in flight)',
  security: bearer,
  request: { params: AgentIdParams, body: { content: { 'application/json': { schema: AgentMessageRequestSchema } } } },
  responses: {
    202: jsonContent(MessageAcceptedSchema, 'Accepted: its position among the messages of this run'),
    ...steeringErrors,
    409: errorResponse('The run has ended or is ending (already_finished), or 20 messages wait (too_many_messages)'),
  },
});
export const ApprovalDecidedSchema = z
  .object({ agentId: z.string(), toolCallId: z.string(), decision: z.enum(['approve', 'deny']) })
  .openapi('ApprovalDecided');
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/{agentId}/approvals/{toolCallId}',
  summary: 'Decide a tool call that waits for approval (options.approvals): approve runs it, deny returns the note',
  security: bearer,
  request: {
    params: ToolCallParams,
    body: { content: { 'application/json': { schema: ApprovalDecisionRequestSchema } } },
  },
  responses: {
    200: jsonContent(ApprovalDecidedSchema, 'The decision was taken; the sandbox resumes'),
    ...steeringErrors,
    404: errorResponse('No such agent, or the tool call does not wait for a decision (not_waiting)'),
    409: errorResponse('The call was already decided (already_decided), or the run has ended'),
  },
});
export const PauseStateSchema = z
  .object({ agentId: z.string(), state: z.enum(AGENT_STATES), pauseRequested: z.boolean() })
  .openapi('PauseState');
for (const [action, summary] of [
  ['pause', 'Pause the run at its next step: the sandbox is paused, no model or tool call is made'],
  ['resume', 'Resume a paused run (409 not_paused when it is not paused)'],
] as const)
  openApiRegistry.registerPath({
    method: 'post',
    path: `/agents/{agentId}/${action}`,
    summary,
    security: bearer,
    request: { params: AgentIdParams },
    responses: {
      202: jsonContent(PauseStateSchema, 'Taken: the state now, and whether a pause holds'),
      ...steeringErrors,
    },
  });
export const FollowUpResponseSchema = SpawnAgentResponseSchema.extend({ parentAgentId: z.string() }).openapi(
  'FollowUpResponse',
);
openApiRegistry.registerPath({
  method: 'post',
  path: '/agents/{agentId}/continue',
  summary:
    'Start a follow-up of a finished agent: a new agent on its result branch, with its outcome in the instructions ' +
    '(same type and options unless given), linked to it both ways in the status',
  security: bearer,
  request: {
    params: AgentIdParams,
    body: { content: { 'application/json': { schema: ContinueAgentRequestSchema } } },
  },
  responses: {
    202: jsonContent(FollowUpResponseSchema, 'The follow-up was started'),
    200: jsonContent(FollowUpResponseSchema, 'An agent for the task is still live: it is returned, nothing starts'),
    ...steeringErrors,
    409: errorResponse('The agent has not finished (not_finished), or its result is not stored (no_result)'),
  },
});
