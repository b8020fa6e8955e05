import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import pino from 'pino';

export type Logger = pino.Logger;

/** Where a secret could sit in a logged object: it is replaced by *** before the line is written. */
const REDACTED_PATHS = [
  '*.ANTHROPIC_API_KEY',
  '*.INSTANCE_PRIVATE_KEY',
  '*.privateKey',
  '*.authorization',
  '*.password',
  'config.DATABASE_URL',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers.signature',
];

/** Structured JSON logs on stdout (or `destination`); secrets are redacted wherever they could appear. */
export function createLogger(name: string, level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = { name, level, redact: { paths: REDACTED_PATHS, censor: '***' } };
  return destination ? pino(options, destination) : pino(options);
}

const TEMPORAL_LEVELS: Record<LogLevel, pino.Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * The Temporal SDK's logger interface on top of pino, so the SDK's lines (with workflowId, runId, activity) are JSON
 * like ours.
 */
export function temporalLogger(log: Logger): TemporalLogger {
  const write = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    log[TEMPORAL_LEVELS[level]]({ ...meta }, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}
