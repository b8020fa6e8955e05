import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout; secrets are redacted wherever they could appear. */
export function createLogger(name: string, level: string): Logger {
  return pino({
    name,
    level,
    redact: { paths: ['*.ANTHROPIC_API_KEY', '*.INSTANCE_PRIVATE_KEY', '*.privateKey', '*.authorization', '*.password', 'config.DATABASE_URL'], censor: '***' },
  });
}
