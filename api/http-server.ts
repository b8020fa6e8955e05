import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Express } from 'express';
import { errorBody } from './errors';

/** How long a client may take to send a request's headers. */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * How long a client may take to send its whole request: a body that stalls (declared and never sent)
 * gets 408 and its socket is closed, instead of holding a socket and a parser for minutes. Event
 * streams are not affected: their request is received at once, only the answer lasts.
 */
export const REQUEST_TIMEOUT_MS = 15_000;

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'request_timeout',
    `The request was not received within ${REQUEST_TIMEOUT_MS / 1000} s`,
  ],
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'The request headers are too large'],
};

/**
 * A request that never reached Express (malformed, too slow): a JSON error like every other, then the socket closes.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, code, message] = CLIENT_ERRORS[error.code ?? ''] ?? [
    400,
    'bad_request',
    'The request is not valid HTTP',
  ];
  const body = JSON.stringify(errorBody(code, message));
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The API's HTTP server: Node's defaults give a stalled request five minutes and look only every 30 s. */
export function createApiServer(app: Express): http.Server {
  const server = http.createServer(
    { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000 },
    app,
  );
  server.on('clientError', answerClientError);
  return server;
}
