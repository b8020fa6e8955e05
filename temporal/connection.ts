import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { AppConfig } from '../config/env';

const CONNECT_TIMEOUT_MS = 5_000;

export class TemporalUnreachableError extends Error {
  override readonly name = 'TemporalUnreachableError';
}

function unreachable(address: string, cause: unknown): TemporalUnreachableError {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new TemporalUnreachableError(`Temporal server at ${address} is unreachable (${reason})`);
}

/** The process-wide client the API uses to start, signal and query workflows. */
export async function connectTemporalClient(config: AppConfig): Promise<Client> {
  try {
    const connection = await Connection.connect({
      address: config.TEMPORAL_ADDRESS,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
    return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  } catch (error) {
    throw unreachable(config.TEMPORAL_ADDRESS, error);
  }
}

/**
 * A connection for health probes: lazy and without the client's retry interceptor, so a probe fails
 * once and fast, and no retry timer outlives it (a pending retry on a closed channel crashes Node).
 */
export function createProbeConnection(config: AppConfig): Connection {
  return Connection.lazy({ address: config.TEMPORAL_ADDRESS, connectTimeout: CONNECT_TIMEOUT_MS, interceptors: [] });
}

/** The worker's connection (Rust core); it fails fast when nothing answers at the address. */
export async function connectWorkerConnection(config: AppConfig): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  } catch (error) {
    throw unreachable(config.TEMPORAL_ADDRESS, error);
  }
}
