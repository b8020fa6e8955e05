/**
 * The hub's federationCommand workflow (POST /api/v1/federation/command): one signed COMMAND to a
 * peer, sent and its signed reply verified. Its failure types are those of every federation activity.
 */
export const FEDERATION_COMMAND_WORKFLOW = 'federationCommand';

export const federationCommandWorkflowId = (messageId: string): string => `federation-command-${messageId}`;

export interface OutboundCommand {
  connectionId: string;
  messageId: string;
  commandType: string;
  payload: Record<string, unknown>;
  /** The envelope's nonce and timestamp are fixed per messageId, so a retried send has the same bytes. */
  nonce: string;
  timestamp: string;
}

/** A peer's signed reply, verified: what the workflow returns. */
export interface VerifiedCommand {
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  /** The reply's result when it is small (spawn and kill replies are); null otherwise. */
  result: Record<string, unknown> | null;
}

/** ApplicationFailure types of the federation activities, which the workflows tell apart. */
export const FEDERATION_FAILURES = {
  /** The peer did not answer, or answered "not now" (busy, rate limited): worth another try. */
  peerUnreachable: 'PeerUnreachable',
  /** The peer refused the request before running it (unsigned 4xx): another try gets the same answer. */
  commandRefused: 'CommandRefused',
  /** The reply was not signed by the peer for this very message. */
  replyNotVerified: 'ReplyNotVerified',
  /** Our side of the connection is not ACTIVE: nothing was sent. */
  connectionInactive: 'ConnectionInactive',
  /** The hub refused an event for good (it does not know the agent). */
  eventRefused: 'EventRefused',
} as const;
