/**
 * Errors of the domain modules (agents, connections). They say what went wrong in domain terms;
 * api/ maps each kind to an HTTP status, and the federation command handler to a signed error reply.
 */
export type DomainErrorKind =
  /** The request is well-formed but not acceptable (a bad value, an action that does not apply). */
  | 'invalid'
  | 'not_found'
  | 'forbidden'
  /** The action conflicts with the current state (already finished, already connected). */
  | 'conflict'
  /** What was asked for existed and was removed (by the retention). */
  | 'gone'
  /** A peer instance refused or did not answer. */
  | 'peer_failed';

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
