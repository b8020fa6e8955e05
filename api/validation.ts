import type { Request } from 'express';
import type { z } from 'zod';
import { ApiError } from './errors';
import { describeIssues } from '../shared/zod-issues';

/** Validates the JSON body against its schema; a mismatch is a 400 that names every offending field. */
export function parseBody<T extends z.ZodType>(schema: T, req: Request): z.infer<T> {
  const hasBody = req.headers['content-length'] !== '0' && req.headers['content-length'] !== undefined;
  if ((hasBody || req.headers['transfer-encoding']) && !req.is('application/json')) {
    throw new ApiError(415, 'unsupported_media_type', 'The request body must be application/json');
  }
  const parsed = schema.safeParse(req.body ?? {});
  if (!parsed.success) throw new ApiError(400, 'validation_failed', describeIssues(parsed.error, 'body'));
  return parsed.data;
}

export function parseParams<T extends z.ZodType>(schema: T, req: Request): z.infer<T> {
  const parsed = schema.safeParse(req.params);
  if (!parsed.success) throw new ApiError(400, 'invalid_parameter', describeIssues(parsed.error, 'body'));
  return parsed.data;
}
