import type { ErrorRequestHandler, RequestHandler } from 'express';
import { DomainError, type DomainErrorKind } from '../domain/errors';
import type { Logger } from '../platform/logger';

/** The HTTP status of each kind of domain error. */
const STATUS_BY_KIND: Record<DomainErrorKind, number> = {
  invalid: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  peer_failed: 502,
};

/** An HTTP-level error (authentication, media type, body) with its own status and machine-readable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  success: false;
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { success: false, error: { code, message } };
}

/** body-parser reports its failures as errors carrying `type` and `status`. */
interface BodyParserError {
  type: string;
  status?: number;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return typeof error === 'object' && error !== null && typeof (error as { type?: unknown }).type === 'string';
}

const BODY_PARSER_ERRORS: Record<string, [number, string, string]> = {
  'entity.parse.failed': [400, 'invalid_json', 'The request body is not valid JSON'],
  'entity.too.large': [413, 'payload_too_large', 'The request body is too large'],
  'encoding.unsupported': [
    415,
    'unsupported_encoding',
    'The request body encoding is not supported (signed requests take no Content-Encoding)',
  ],
  'charset.unsupported': [415, 'unsupported_charset', 'The request body charset is not supported'],
  'request.aborted': [400, 'request_aborted', 'The request was aborted'],
};

/**
 * PostgreSQL not answering (restarting, failing over): Prisma's connection error codes, or what the
 * driver adapter passes on from `pg`. The request may be sent again once it is back.
 */
/** What the driver says when PostgreSQL is down, starting or stopping. */
const DATABASE_DOWN_MESSAGES = [
  /ECONNREFUSED|ECONNRESET|Connection terminated|terminating connection/,
  /not yet accepting connections|the database system is (starting up|shutting down)/,
];

export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === 'P1001' || code === 'P1017' || code === 'P2024') return true;
  const text = typeof message === 'string' ? message : '';
  return DATABASE_DOWN_MESSAGES.some((pattern) => pattern.test(text));
}

export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('not_found', `No route for ${req.method} ${req.path}`));
};

/** Every error ends here as JSON; unexpected ones are logged with their stack and answered without it. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof ApiError) {
      res.status(error.status).json(errorBody(error.code, error.message));
      return;
    }
    if (error instanceof DomainError) {
      res.status(STATUS_BY_KIND[error.kind]).json(errorBody(error.code, error.message));
      return;
    }
    if (isBodyParserError(error) && BODY_PARSER_ERRORS[error.type]) {
      const [status, code, message] = BODY_PARSER_ERRORS[error.type] ?? [400, 'bad_request', 'Bad request'];
      // The rest of a refused body is not read: the socket closes after the answer instead of waiting for it.
      res.setHeader('connection', 'close');
      res.status(status).json(errorBody(code, message));
      return;
    }
    if (isDatabaseUnavailable(error)) {
      log.warn(
        { method: req.method, path: req.path, error: (error as Error).message.slice(0, 200) },
        'database unavailable',
      );
      res.setHeader('retry-after', '5');
      res
        .status(503)
        .json(
          errorBody(
            'database_unavailable',
            'The database does not answer right now; nothing was changed. Try again in a few seconds.',
          ),
        );
      return;
    }
    log.error({ err: error, method: req.method, path: req.path }, 'unhandled error');
    res.status(500).json(errorBody('internal_error', 'Internal server error'));
  };
}
