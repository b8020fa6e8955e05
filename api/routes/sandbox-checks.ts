import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Router } from 'express';
import type { PrismaClient } from '../../prisma/client';
import {
  SANDBOX_CHECK_WORKFLOW,
  sandboxCheckWorkflowId,
  type SandboxCheckInput,
} from '../../workflows/sandbox-check/contract';
import { requireAdminToken } from '../auth';
import { ApiError } from '../errors';
import { parseBody, parseParams } from '../validation';
import { StartSandboxCheckBodySchema, CheckParamsSchema, SandboxCheckView } from '../schemas/sandbox-checks';

export interface SandboxCheckRouteDeps {
  temporal: Client;
  prisma: PrismaClient;
  taskQueue: string;
}

async function viewCheck(deps: SandboxCheckRouteDeps, checkId: string): Promise<SandboxCheckView | null> {
  const workflowId = sandboxCheckWorkflowId(checkId);
  const row = await deps.prisma.sandboxCheck.findUnique({ where: { id: checkId } });
  let workflowStatus: string | undefined;
  try {
    workflowStatus = (await deps.temporal.workflow.getHandle(workflowId).describe()).status.name;
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    if (!row) return null;
  }
  return {
    checkId,
    workflowId,
    state: (row?.state as SandboxCheckView['state'] | undefined) ?? 'pending',
    workflowStatus,
    exitCode: row?.exitCode ?? null,
    findings: (row?.findings as Record<string, unknown> | null | undefined) ?? null,
    error: row?.error ?? null,
    createdAt: row?.createdAt.toISOString(),
    finishedAt: row?.finishedAt?.toISOString() ?? null,
  };
}

export function sandboxCheckRouter(deps: SandboxCheckRouteDeps): Router {
  const router = Router();
  // Diagnostics are the instance's administrator's.
  router.use('/diagnostics', requireAdminToken(deps.prisma));

  router.post('/diagnostics/sandbox-checks', async (req, res) => {
    const body = parseBody(StartSandboxCheckBodySchema, req);
    const checkId = body.checkId ?? randomUUID();
    const workflowId = sandboxCheckWorkflowId(checkId);
    try {
      await deps.temporal.workflow.start(SANDBOX_CHECK_WORKFLOW, {
        taskQueue: deps.taskQueue,
        workflowId,
        args: [{ checkId } satisfies SandboxCheckInput],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        workflowExecutionTimeout: '10 minutes',
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      const existing = await viewCheck(deps, checkId);
      res.status(200).json(existing);
      return;
    }
    res.status(202).json({ checkId, workflowId, state: 'pending' } satisfies SandboxCheckView);
  });

  router.get('/diagnostics/sandbox-checks/:checkId', async (req, res) => {
    const { checkId } = parseParams(CheckParamsSchema, req);
    const view = await viewCheck(deps, checkId);
    if (!view) throw new ApiError(404, 'not_found', `No sandbox check ${checkId}`);
    res.json(view);
  });

  return router;
}
