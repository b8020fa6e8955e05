import type { AgentContext, AgentOptions } from '../../shared/agent-schemas';
import { signal, query, update } from '../../shared/temporal-definitions';
import type { AgentState, AgentType, ContextManagement, DeliveryOutcome, TokenUsage } from '../../shared/vocabulary';
import type { AgentOrigin } from '../hub-event-delivery/contract';
import type { OperatorMessage } from '../../model-client/conversation';

/**
 * The agentRun workflow's contract: its name, input, status, signal, query and failure types, shared
 * by the API, the activities and the workflow (types and plain data only).
 */
export const AGENT_RUN_WORKFLOW = 'agentRun';

export interface AgentRunInput {
  agentId: string;
  workspaceId: string;
  taskId: string;
  agentType: AgentType;
  context: AgentContext;
  options: AgentOptions;
  /** What the API answered: queued when every sandbox slot looked taken. */
  initialState: 'spawning' | 'queued';
  /** Admission priority, 1 (lowest) to 10 (default 5). */
  priority?: number;
  /** The host whose slot the spawn's own request got: the run launches there without asking again. */
  admittedOn?: string;
  /** Turns one workflow run handles before it continues as new (keeps each history small). Default 50. */
  turnsPerRun?: number;
  /** Set when a run continues as new: where the previous run left off. */
  resume?: AgentResume;
  /** Set when a hub spawned this agent through a federation connection: its state changes go there. */
  origin?: AgentOrigin;
}

/** What a run hands the next one when it continues as new: the sandbox lives on. */
export interface AgentResume {
  hostQueue: string;
  containerName: string;
  baseSha: string;
  turn: number;
  usage: TokenUsage;
  startedAt: string;
  /** Epoch ms at which the per-task timeout fires; it spans every run of the chain. */
  deadlineAt: number;
  lastTool: string | null;
  error: string | null;
  summary: string;
  costUsd: number | null;
  contextManagement: ContextManagement | null;
  /** Operator messages accepted and not yet in the conversation, and how many were accepted in all. */
  messages?: OperatorMessage[];
  messagesReceived?: number;
  /** An operator asked for a pause that had not taken effect yet. */
  pauseRequested?: boolean;
}

export interface AgentStatus {
  agentId: string;
  taskId: string;
  agentType: AgentType;
  state: AgentState;
  turn: number;
  lastTool: string | null;
  usage: TokenUsage;
  /** The estimated cost in USD from the worker's price table; null when the model has no price. */
  costUsd?: number | null;
  /** Set once older tool results were cleared to fit the context window. */
  contextManagement?: ContextManagement | null;
  startedAt: string;
  updatedAt: string;
  error: string | null;
  /** Where options.delivery pushed the result, or why not (absent: no push was asked, or not yet). */
  delivery?: DeliveryOutcome | null;
  /** The tool call that waits for an operator's decision (state input_required). */
  pendingApproval?: PendingApproval | null;
  /** Operator messages accepted, and how many of them already reached the conversation. */
  messages?: { received: number; delivered: number };
  /** An operator asked for a pause: it takes effect at the next step (a model or tool call). */
  pauseRequested?: boolean;
}

/** A tool call that matched options.approvals[rule] and waits; expiresAt is when the rule's onTimeout applies. */
export interface PendingApproval {
  toolCallId: string;
  tool: string;
  label: string;
  rule: number;
  requestedAt: string;
  expiresAt: string | null;
  onTimeout: 'approve' | 'deny';
}

/** What recordApproval writes: the call starts waiting, or it was decided (by an operator or its timeout). */
export type ApprovalRecord = { agentId: string; toolCallId: string; label: string; rule: number } & (
  | { phase: 'requested'; expiresAt: string | null; onTimeout: 'approve' | 'deny' }
  | { phase: 'decided'; decision: 'approve' | 'deny'; decidedBy: 'operator' | 'timeout'; note: string | null }
);

export interface ApprovalDecision {
  toolCallId: string;
  decision: 'approve' | 'deny';
  note?: string;
}

export const killAgentSignal = signal<[{ reason?: string }]>('kill');
export const agentStatusQuery = query<AgentStatus>('status');

/** Steering a live run (issue 24): each is an update, so the caller learns at once whether the run took it. */
export const sendMessageUpdate = update<{ position: number }, [{ text: string }]>('message');
export const decideApprovalUpdate = update<{ toolCallId: string; decision: 'approve' | 'deny' }, [ApprovalDecision]>(
  'decideApproval',
);
export const pauseUpdate = update<{ state: AgentState; pauseRequested: boolean }, []>('pause');
export const resumeUpdate = update<{ state: AgentState; pauseRequested: boolean }, []>('resume');

/** Why a steering update was refused (ApplicationFailure types): the API answers each with its own 4xx. */
export const STEERING_REFUSALS = {
  /** The run has ended, or is ending (collecting its result): nothing more reaches the model. */
  finished: 'AgentFinished',
  tooManyMessages: 'TooManyMessages',
  /** The tool call is not one this run asked an operator about. */
  unknownToolCall: 'UnknownToolCall',
  alreadyDecided: 'AlreadyDecided',
  notPaused: 'NotPaused',
} as const;

/** ApplicationFailure types the run's activities raise and the workflow reads. */
export const AGENT_RUN_FAILURES = {
  /** The run ended failed (a budget, a model refusal, a lost host): the workflow's own failure. */
  agentFailed: 'AgentFailed',
  /** The sandbox cannot be made or used: retrying the same call gets the same answer. */
  sandboxFailed: 'SandboxFailed',
  /** The worker shut down under an activity (a deploy): retried on the next worker, never the task's fault. */
  workerShutdown: 'WorkerShutdown',
  /** The Messages API refused the request itself (4xx other than rate limits): another try gets the same. */
  modelRequestRejected: 'ModelRequestRejected',
  modelNotConfigured: 'ModelNotConfigured',
  contextWindowExceeded: 'ContextWindowExceeded',
} as const;

/** What launchSandbox returns: where the sandbox runs and the commit the agent starts from. */
export interface LaunchedSandbox {
  hostQueue: string;
  containerName: string;
  baseSha: string;
}

/** What runTool returns: the call's outcome (its output is stored, not carried through the history). */
export interface ToolOutcome {
  status: 'finished' | 'unknown';
  isError: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  /** The workspace is full: further writes fail. */
  quotaReached?: boolean;
}

/** What collectResult returns: the result branch and what changed on it. */
export interface AgentResultSummary {
  branch: string;
  commitSha: string | null;
  filesChanged: number;
  testExitCode: number | null;
}
