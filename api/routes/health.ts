import { Router } from 'express';
import type { PrismaClient } from '../../prisma/client';
import { authenticateIfPresent, callerOfResponse } from '../auth';
import { z } from 'zod';
import { checkReadiness, isReady, type ReadinessTargets } from '../../platform/readiness';
import { LivenessSchema, ReadinessSchema } from '../schemas/health';

export function healthRouter(targets: ReadinessTargets & { prisma: PrismaClient }): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' } satisfies z.infer<typeof LivenessSchema>);
  });
  router.get('/health/ready', authenticateIfPresent(targets.prisma), async (_req, res) => {
    const checked = await checkReadiness(targets);
    const ready = isReady(checked);
    // Anyone may ask whether the instance is ready; what failed and why is the administrator's to read.
    const dependencies =
      callerOfResponse(res)?.role === 'admin'
        ? checked
        : {
            temporal: { status: checked.temporal.status },
            postgres: { status: checked.postgres.status },
            docker: { status: checked.docker.status },
          };
    const body: z.infer<typeof ReadinessSchema> = { status: ready ? 'ready' : 'not_ready', dependencies };
    res.status(ready ? 200 : 503).json(body);
  });
  return router;
}
