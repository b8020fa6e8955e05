import type { RequestHandler } from 'express';

/**
 * Refuses a request whose declared Content-Length is over `limitBytes` before reading any of it. The
 * body parsers refuse it too, but only once the whole declared body has arrived (they read it off to
 * keep the connection usable): a client that declares 10 MiB and sends 5 bytes would hold its socket
 * until the request timeout. This answers at once (413, through the usual error handlers), and the
 * answer closes the connection.
 */
export function refuseDeclaredTooLarge(limitBytes: number): RequestHandler {
  return (req, _res, next) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (Number.isFinite(declared) && declared > limitBytes) {
      next(
        Object.assign(new Error(`the declared body of ${declared} bytes is over ${limitBytes}`), {
          type: 'entity.too.large',
          status: 413,
          expose: true,
        }),
      );
      return;
    }
    next();
  };
}
