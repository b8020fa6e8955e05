import type { Client, WorkflowHandle } from '@temporalio/client';
import {
  FEDERATION_COMMAND_WORKFLOW,
  federationCommandWorkflowId,
  type OutboundCommand,
  type VerifiedCommand,
} from '../workflows/federation-command/contract';

/** Starts the durable federationCommand workflow that sends one signed COMMAND and verifies the peer's reply. */
export async function startFederationCommand(
  client: Client,
  taskQueue: string,
  command: OutboundCommand,
): Promise<WorkflowHandle<(command: OutboundCommand) => Promise<VerifiedCommand>>> {
  return await client.workflow.start<(command: OutboundCommand) => Promise<VerifiedCommand>>(
    FEDERATION_COMMAND_WORKFLOW,
    { taskQueue, workflowId: federationCommandWorkflowId(command.messageId), args: [command] },
  );
}
