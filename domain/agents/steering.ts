import { WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentState } from '../../shared/vocabulary';
import {
  decideApprovalUpdate,
  pauseUpdate,
  resumeUpdate,
  sendMessageUpdate,
  STEERING_REFUSALS,
} from '../../workflows/agent-run/contract';
import { DomainError, type DomainErrorKind } from '../errors';

/**
 * An operator's say in a live run (issue 24), whichever way it comes: the REST API, or a hub's signed command. A local
 * agent gets it as a workflow update; an agent on a peer, as the matching command (agent.message, agent.approval,
 * agent.pause, agent.resume).
 */
export type SteeringAction =
  | { kind: 'message'; text: string }
  | { kind: 'approval'; toolCallId: string; decision: 'approve' | 'deny'; note?: string }
  | { kind: 'pause' }
  | { kind: 'resume' };

/** What the run answers: a message's position, the decision taken, or the state after a pause or resume. */
export type SteeringAnswer =
  | { position: number }
  | { toolCallId: string; decision: 'approve' | 'deny' }
  | { state: AgentState; pauseRequested: boolean };

export async function updateRun(run: WorkflowHandle, action: SteeringAction): Promise<SteeringAnswer> {
  switch (action.kind) {
    case 'message':
      return await run.executeUpdate(sendMessageUpdate, { args: [{ text: action.text }] });
    case 'approval': {
      const { toolCallId, decision, note } = action;
      return await run.executeUpdate(decideApprovalUpdate, {
        args: [{ toolCallId, decision, ...(note ? { note } : {}) }],
      });
    }
    case 'pause':
      return await run.executeUpdate(pauseUpdate);
    case 'resume':
      return await run.executeUpdate(resumeUpdate);
  }
}

/** The signed command that carries an action to the peer an agent runs on, for the spoke's agent id. */
export function steeringCommand(
  remoteAgentId: string,
  action: SteeringAction,
): { commandType: string; payload: Record<string, unknown> } {
  const { kind, ...fields } = action;
  return { commandType: `agent.${kind}`, payload: { agentId: remoteAgentId, ...fields } };
}

/** The refusals a run (or a spoke, in its signed reply) gives, by code: the status the API answers with. */
const REFUSAL_KINDS: Record<string, DomainErrorKind> = {
  already_finished: 'conflict',
  too_many_messages: 'conflict',
  not_waiting: 'not_found',
  already_decided: 'conflict',
  not_paused: 'conflict',
  not_found: 'not_found',
  forbidden: 'forbidden',
  invalid_payload: 'invalid',
};
const REFUSAL_CODES: Record<string, string> = {
  [STEERING_REFUSALS.finished]: 'already_finished',
  [STEERING_REFUSALS.tooManyMessages]: 'too_many_messages',
  [STEERING_REFUSALS.unknownToolCall]: 'not_waiting',
  [STEERING_REFUSALS.alreadyDecided]: 'already_decided',
  [STEERING_REFUSALS.notPaused]: 'not_paused',
};

/** A spoke's refusal, by its code and words; a code this side does not know is the peer's failure. */
export function refusalOf(code: string, message: string): DomainError {
  return new DomainError(REFUSAL_KINDS[code] ?? 'peer_failed', code, message);
}

/** A refused update as a DomainError (the run's own words); anything else as it was. */
export function steeringError(agentId: string, error: unknown): unknown {
  if (error instanceof WorkflowNotFoundError)
    return new DomainError('conflict', 'already_finished', `Agent ${agentId} has already finished`);
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
    const code = REFUSAL_CODES[error.cause.type ?? ''];
    if (code) return refusalOf(code, error.cause.message);
  }
  return error;
}
