import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

/** The ApplicationFailure behind a failed activity call: its type (one of FEDERATION_FAILURES), message and details. */
export function failureOf(error: unknown): { type: string | null; message: string; details: unknown[] } {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure)
    return { type: cause.type ?? null, message: cause.message, details: cause.details ?? [] };
  return { type: null, message: cause instanceof Error ? cause.message : String(cause), details: [] };
}
