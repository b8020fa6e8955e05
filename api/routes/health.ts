import { Router } from 'express';
import { z } from 'zod';
import { checkReadiness, isReady, type ReadinessTargets } from '../../platform/readiness';
import { jsonContent, openApiRegistry } from '../openapi';

const DependencyStatusSchema = z.object({
  status: z.enum(['up', 'down']),
  latencyMs: z.number(),
  error: z.string().optional(),
});

export const LivenessSchema = z.object({ status: z.literal('ok') }).openapi('Liveness');
export const ReadinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    dependencies: z.object({ temporal: DependencyStatusSchema, postgres: DependencyStatusSchema, docker: DependencyStatusSchema }),
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

export function healthRouter(targets: ReadinessTargets): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' } satisfies z.infer<typeof LivenessSchema>);
  });
  router.get('/health/ready', async (_req, res) => {
    const dependencies = await checkReadiness(targets);
    const ready = isReady(dependencies);
    const body: z.infer<typeof ReadinessSchema> = { status: ready ? 'ready' : 'not_ready', dependencies };
    res.status(ready ? 200 : 503).json(body);
  });
  return router;
}
