import type { z } from 'zod';
import type {
  AgentListSchema,
  AgentViewSchema,
  ApprovalDecidedSchema,
  FollowUpResponseSchema,
  ListAgentsQuerySchema,
  MessageAcceptedSchema,
  PauseStateSchema,
} from '../api/schemas/agents';
import type { SessionListSchema, SessionViewSchema, SpawnSessionResponseSchema } from '../api/schemas/sessions';
import type { AgentEventView } from '../shared/agent-events';
import { isTerminalState } from '../shared/vocabulary';
import type {
  ApprovalDecisionRequest,
  ContinueAgentRequestSchema,
  SpawnAgentRequestSchema,
} from '../shared/agent-schemas';
import type { FederatedSpawnRequestSchema } from '../shared/federated-agent-schemas';
import type { SpawnSessionRequestSchema } from '../shared/session-schemas';

/**
 * A typed client of the orchestrator's REST API. Its types are the server's own zod schemas (the
 * ones /openapi.json is built from), and CLIENT_ROUTES lists every route it calls, which a test
 * checks against the served OpenAPI document: a drift between server and client fails it.
 */
export const CLIENT_ROUTES = {
  spawnAgent: { method: 'post', path: '/agents/spawn' },
  listAgents: { method: 'get', path: '/agents' },
  agentStatus: { method: 'get', path: '/agents/{agentId}/status' },
  killAgent: { method: 'post', path: '/agents/{agentId}/kill' },
  agentEvents: { method: 'get', path: '/agents/{agentId}/events' },
  resultBundle: { method: 'get', path: '/agents/{agentId}/result.bundle' },
  sendMessage: { method: 'post', path: '/agents/{agentId}/messages' },
  decideApproval: { method: 'post', path: '/agents/{agentId}/approvals/{toolCallId}' },
  pauseAgent: { method: 'post', path: '/agents/{agentId}/pause' },
  resumeAgent: { method: 'post', path: '/agents/{agentId}/resume' },
  continueAgent: { method: 'post', path: '/agents/{agentId}/continue' },
  spawnSession: { method: 'post', path: '/orchestrator/sessions/spawn' },
  listSessions: { method: 'get', path: '/orchestrator/sessions' },
  sessionStatus: { method: 'get', path: '/orchestrator/sessions/{id}/status' },
  killSession: { method: 'post', path: '/orchestrator/sessions/{id}/kill' },
  sessionEvents: { method: 'get', path: '/orchestrator/sessions/{id}/events' },
  gatewayHealth: { method: 'get', path: '/orchestrator/health' },
  jwks: { method: 'get', path: '/.well-known/jwks.json' },
  liveness: { method: 'get', path: '/health' },
  readiness: { method: 'get', path: '/health/ready' },
  startSandboxCheck: { method: 'post', path: '/diagnostics/sandbox-checks' },
  sandboxCheck: { method: 'get', path: '/diagnostics/sandbox-checks/{checkId}' },
  instance: { method: 'get', path: '/api/v1/federation/instance' },
  connections: { method: 'get', path: '/api/v1/federation/connections' },
  requestConnection: { method: 'post', path: '/api/v1/federation/connections' },
  acceptConnection: { method: 'post', path: '/api/v1/federation/connections/{id}/accept' },
  rejectConnection: { method: 'post', path: '/api/v1/federation/connections/{id}/reject' },
  suspendConnection: { method: 'post', path: '/api/v1/federation/connections/{id}/suspend' },
  resumeConnection: { method: 'post', path: '/api/v1/federation/connections/{id}/resume' },
  disconnectConnection: { method: 'post', path: '/api/v1/federation/connections/{id}/disconnect' },
  rotateKeys: { method: 'post', path: '/api/v1/federation/keys/rotate' },
  sendCommand: { method: 'post', path: '/api/v1/federation/command' },
  commands: { method: 'get', path: '/api/v1/federation/commands' },
  command: { method: 'get', path: '/api/v1/federation/commands/{id}' },
  federationEvents: { method: 'get', path: '/api/v1/federation/events' },
  federatedSpawn: { method: 'post', path: '/api/v1/federation/agents/spawn' },
  federatedStatus: { method: 'get', path: '/api/v1/federation/agents/{agentId}/status' },
  federatedKill: { method: 'post', path: '/api/v1/federation/agents/{agentId}/kill' },
} as const;

/** Documented operations the client leaves out on purpose: peers call them, signed, instance to instance. */
export const PEER_ONLY_ROUTES = [
  '/api/v1/federation/incoming/command',
  '/api/v1/federation/incoming/event',
  '/api/v1/federation/handshake',
];

type Json = Record<string, unknown>;
export type ConnectionAction = 'accept' | 'reject' | 'suspend' | 'resume' | 'disconnect';

export type SpawnAgentRequest = z.input<typeof SpawnAgentRequestSchema>;
export type FederatedSpawnRequest = z.input<typeof FederatedSpawnRequestSchema>;
export type AgentView = z.infer<typeof AgentViewSchema>;
export type AgentList = z.infer<typeof AgentListSchema>;
export type ContinueAgentRequest = z.input<typeof ContinueAgentRequestSchema>;
export type AgentListQuery = Partial<z.input<typeof ListAgentsQuerySchema>>;
export type SpawnSessionRequest = z.input<typeof SpawnSessionRequestSchema>;
export type SessionSpawned = z.infer<typeof SpawnSessionResponseSchema>;
export type SessionView = z.infer<typeof SessionViewSchema>;
export type SessionList = z.infer<typeof SessionListSchema>;
export interface AgentSpawned {
  agentId: string;
  status: string;
  existing: boolean;
}
export interface GatewayHealth {
  status: 'ok' | 'degraded';
  temporal: 'up' | 'down';
  database: 'up' | 'down';
  docker: 'up' | 'down';
}

/** An answer other than 2xx: the API's JSON error (code and message), and the HTTP status. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

export interface ClientOptions {
  baseUrl: string;
  token?: string;
  /** Per request, milliseconds (default 30 s); event streams have none. */
  timeoutMs?: number;
}

export class OrchestratorClient {
  private readonly baseUrl: string;
  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/$/, '');
  }

  spawnAgent(request: SpawnAgentRequest): Promise<AgentSpawned> {
    return this.call('POST', '/agents/spawn', request);
  }
  listAgents(query: AgentListQuery = {}): Promise<AgentList> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query) as Array<[string, string | number | undefined]>)
      if (value !== undefined) search.set(key, String(value));
    return this.call('GET', `/agents${search.size > 0 ? `?${search.toString()}` : ''}`);
  }
  agentStatus(agentId: string): Promise<AgentView> {
    return this.call('GET', `/agents/${encodeURIComponent(agentId)}/status`);
  }
  killAgent(agentId: string): Promise<{ agentId: string; status: 'killing' }> {
    return this.call('POST', `/agents/${encodeURIComponent(agentId)}/kill`);
  }
  /** Says something to a running agent: it joins the model's conversation at the next turn. */
  sendMessage(agentId: string, text: string): Promise<z.infer<typeof MessageAcceptedSchema>> {
    return this.call('POST', `/agents/${encodeURIComponent(agentId)}/messages`, { text });
  }
  decideApproval(
    agentId: string,
    toolCallId: string,
    decision: ApprovalDecisionRequest,
  ): Promise<z.infer<typeof ApprovalDecidedSchema>> {
    const path = `/agents/${encodeURIComponent(agentId)}/approvals/${encodeURIComponent(toolCallId)}`;
    return this.call('POST', path, decision);
  }
  pauseAgent(agentId: string): Promise<z.infer<typeof PauseStateSchema>> {
    return this.call('POST', `/agents/${encodeURIComponent(agentId)}/pause`);
  }
  resumeAgent(agentId: string): Promise<z.infer<typeof PauseStateSchema>> {
    return this.call('POST', `/agents/${encodeURIComponent(agentId)}/resume`);
  }
  /** A follow-up of a finished agent, on its result. */
  continueAgent(agentId: string, request: ContinueAgentRequest): Promise<z.infer<typeof FollowUpResponseSchema>> {
    return this.call('POST', `/agents/${encodeURIComponent(agentId)}/continue`, request);
  }
  spawnSession(request: SpawnSessionRequest): Promise<SessionSpawned> {
    return this.call('POST', '/orchestrator/sessions/spawn', request);
  }
  listSessions(limit = 50): Promise<SessionList> {
    return this.call('GET', `/orchestrator/sessions?limit=${limit}`);
  }
  sessionStatus(sessionId: string): Promise<SessionView> {
    return this.call('GET', `/orchestrator/sessions/${encodeURIComponent(sessionId)}/status`);
  }
  killSession(sessionId: string): Promise<{ sessionId: string; status: 'killing' }> {
    return this.call('POST', `/orchestrator/sessions/${encodeURIComponent(sessionId)}/kill`);
  }
  health(): Promise<GatewayHealth> {
    return this.call('GET', '/orchestrator/health', undefined, { acceptStatuses: [503] });
  }
  jwks(): Promise<{ keys: Json[] }> {
    return this.call('GET', '/.well-known/jwks.json');
  }
  liveness(): Promise<{ status: 'ok' }> {
    return this.call('GET', '/health');
  }
  readiness(): Promise<{ status: 'ready' | 'not_ready'; dependencies: Json }> {
    return this.call('GET', '/health/ready', undefined, { acceptStatuses: [503] });
  }
  startSandboxCheck(checkId: string): Promise<Json> {
    return this.call('POST', '/diagnostics/sandbox-checks', { checkId });
  }
  sandboxCheck(checkId: string): Promise<Json> {
    return this.call('GET', `/diagnostics/sandbox-checks/${encodeURIComponent(checkId)}`);
  }
  instance(): Promise<Json> {
    return this.call('GET', '/api/v1/federation/instance');
  }
  connections(): Promise<{ connections: Json[] }> {
    return this.call('GET', '/api/v1/federation/connections');
  }
  requestConnection(peerUrl: string, allowedCommandTypes: string[] = []): Promise<Json> {
    return this.call('POST', '/api/v1/federation/connections', { peerUrl, allowedCommandTypes });
  }
  connectionAction(connectionId: string, action: ConnectionAction, body: Json = {}): Promise<Json> {
    return this.call('POST', `/api/v1/federation/connections/${encodeURIComponent(connectionId)}/${action}`, body);
  }
  rotateKeys(overlapSeconds?: number): Promise<Json> {
    return this.call('POST', '/api/v1/federation/keys/rotate', overlapSeconds === undefined ? {} : { overlapSeconds });
  }
  sendCommand(command: { connectionId: string; commandType: string; payload: Json }): Promise<Json> {
    return this.call('POST', '/api/v1/federation/command', command, { acceptStatuses: [502] });
  }
  commands(): Promise<{ commands: Json[] }> {
    return this.call('GET', '/api/v1/federation/commands');
  }
  command(id: string): Promise<Json> {
    return this.call('GET', `/api/v1/federation/commands/${encodeURIComponent(id)}`);
  }
  federationEvents(): Promise<{ events: Json[] }> {
    return this.call('GET', '/api/v1/federation/events');
  }
  federatedSpawn(
    request: FederatedSpawnRequest,
  ): Promise<{ success: true; data: { agentId: string; state: string; spawnedAt: string; existing: boolean } }> {
    return this.call('POST', '/api/v1/federation/agents/spawn', request);
  }
  federatedStatus(agentId: string): Promise<{ success: true; data: Json }> {
    return this.call('GET', `/api/v1/federation/agents/${encodeURIComponent(agentId)}/status`);
  }
  federatedKill(agentId: string): Promise<{ success: true; data: Json }> {
    return this.call('POST', `/api/v1/federation/agents/${encodeURIComponent(agentId)}/kill`);
  }

  /** The agent's result branch as a git bundle (bytes), and the commit of its one branch. */
  async resultBundle(agentId: string): Promise<{ data: Uint8Array; commitSha: string }> {
    const response = await fetch(`${this.baseUrl}/agents/${encodeURIComponent(agentId)}/result.bundle`, {
      headers: this.headers(),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 120_000),
    });
    if (!response.ok) throw await errorOf(response);
    return {
      data: new Uint8Array(await response.arrayBuffer()),
      commitSha: response.headers.get('x-commit-sha') ?? '',
    };
  }

  /** The agent's events so far (a finished run's whole log), without following. */
  async eventsSoFar(agentId: string): Promise<AgentEventView[]> {
    const response = await fetch(`${this.baseUrl}/agents/${encodeURIComponent(agentId)}/events?follow=false`, {
      headers: { ...this.headers(), accept: 'text/event-stream' },
    });
    if (!response.ok || !response.body) throw await errorOf(response);
    const events: AgentEventView[] = [];
    for await (const event of parseEventStream(response.body)) events.push(event);
    return events;
  }

  /**
   * The agent's events as they happen, until its final state. Reconnects after a dropped connection
   * with the last id seen (Last-Event-ID), so nothing is missed and nothing comes twice.
   */
  async *agentEvents(agentId: string, afterSeq = 0): AsyncGenerator<AgentEventView> {
    let last = afterSeq;
    for (let failures = 0; ;) {
      let response: Response;
      try {
        response = await fetch(`${this.baseUrl}/agents/${encodeURIComponent(agentId)}/events`, {
          headers: { ...this.headers(), accept: 'text/event-stream', 'last-event-id': String(last) },
        });
      } catch (error) {
        if (++failures > 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1000 * failures));
        continue;
      }
      if (!response.ok || !response.body) throw await errorOf(response);
      failures = 0;
      let final = false;
      for await (const event of parseEventStream(response.body)) {
        last = event.seq;
        yield event;
        if (event.data.type === 'state' && isTerminalState(event.data.state)) final = true;
      }
      if (final) return;
      // The server ends a stream only after the final state, or when the agent ended before events were kept.
      const status = await this.agentStatus(agentId);
      if (isTerminalState(status.state)) return;
    }
  }

  private headers(): Record<string, string> {
    return this.options.token ? { authorization: `Bearer ${this.options.token}` } : {};
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    { acceptStatuses = [] as number[] } = {},
  ): Promise<T> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { ...this.headers(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
    });
    if (!response.ok && !acceptStatuses.includes(response.status)) throw await errorOf(response);
    return (await response.json()) as T;
  }
}

async function errorOf(response: Response): Promise<ApiRequestError> {
  const text = await response.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    return new ApiRequestError(
      response.status,
      parsed.error?.code ?? 'error',
      parsed.error?.message ?? `HTTP ${response.status}`,
    );
  } catch {
    return new ApiRequestError(
      response.status,
      'error',
      `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`,
    );
  }
}

/** The events of one SSE response body (text/event-stream), parsed as the server writes them. */
async function* parseEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<AgentEventView> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let boundary = buffer.indexOf('\n\n');
    while (boundary >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      boundary = buffer.indexOf('\n\n');
      const lines = block.split('\n');
      // Live progress (no id) is not part of the log: only the numbered events are yielded.
      if (!lines.some((line) => line.startsWith('id: '))) continue;
      const data = lines.find((line) => line.startsWith('data: '));
      if (data) yield JSON.parse(data.slice('data: '.length)) as AgentEventView;
    }
  }
}
