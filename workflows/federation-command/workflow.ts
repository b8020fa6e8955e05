import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { VerifiedCommand } from './contract';
import { FEDERATION_FAILURES, type OutboundCommand } from './contract';
import { failureOf } from './failures';

const transport = proxyActivities<Pick<Activities, 'sendCommand'>>({
  startToCloseTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: [FEDERATION_FAILURES.commandRefused, FEDERATION_FAILURES.connectionInactive],
  },
});
const verification = proxyActivities<Pick<Activities, 'verifyCommandReply'>>({
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FEDERATION_FAILURES.replyNotVerified],
  },
});
const records = proxyActivities<Pick<Activities, 'recordCommandFailure'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 20 },
});

/**
 * One signed COMMAND to a peer (POST /api/v1/federation/command): send it, then verify the signed
 * reply. The command's row records every attempt and ends succeeded, failed or rejected even when the
 * process that asked is gone.
 */
export async function federationCommand(command: OutboundCommand): Promise<VerifiedCommand> {
  try {
    await transport.sendCommand.executeWithOptions({ summary: `send ${command.commandType}` }, [command]);
  } catch (error) {
    const failure = failureOf(error);
    if (failure.type === FEDERATION_FAILURES.peerUnreachable)
      await records.recordCommandFailure({
        connectionId: command.connectionId,
        messageId: command.messageId,
        reason: failure.message,
      });
    throw error;
  }
  return await verification.verifyCommandReply.executeWithOptions(
    { summary: `verify the signed reply to ${command.commandType}` },
    [command],
  );
}
