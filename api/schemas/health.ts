import { z } from 'zod';
import { jsonContent, openApiRegistry } from '../openapi';

/**
 * The health endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
/** latency and error only for an administrator token. */
const DependencyStatusSchema = z.object({
  status: z.enum(['up', 'down']),
  latencyMs: z.number().optional(),
  error: z.string().optional(),
});

export const LivenessSchema = z.object({ status: z.literal('ok') }).openapi('Liveness');
export const ReadinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    dependencies: z.object({
      temporal: DependencyStatusSchema,
      postgres: DependencyStatusSchema,
      docker: DependencyStatusSchema,
    }),
  })
  .openapi('Readiness');

openApiRegistry.registerPath({
  method: 'get',
  path: '/health',
  summary: 'Liveness: the API process answers',
  responses: { 200: jsonContent(LivenessSchema, 'The process is alive') },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/health/ready',
  summary: 'Readiness: Temporal, PostgreSQL and Docker each up or down',
  responses: {
    200: jsonContent(ReadinessSchema, 'Every dependency answers'),
    503: jsonContent(ReadinessSchema, 'At least one dependency is down'),
  },
});
