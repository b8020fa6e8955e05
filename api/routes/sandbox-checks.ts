import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Router } from 'express';
import { z } from 'zod';
import type { PrismaClient } from '../../prisma/client';
import {
  SANDBOX_CHECK_WORKFLOW,
  sandboxCheckWorkflowId,
  type SandboxCheckInput,
} from '../../workflows/sandbox-check/contract';
import { requireAdminToken } from '../auth';
import { ApiError } from '../errors';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';
import { parseBody, parseParams } from '../validation';

const CheckIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be 1-64 lowercase letters, digits or dashes');

export const StartSandboxCheckBodySchema = z
  .strictObject({ checkId: CheckIdSchema.optional() })
  .openapi('StartSandboxCheck', { description: 'Optional checkId makes the start idempotent' });

const CheckParamsSchema = z.object({ checkId: CheckIdSchema });

export const SandboxCheckSchema = z
  .object({
    checkId: z.string(),
    workflowId: z.string(),
    state: z.enum(['pending', 'running', 'passed', 'failed']),
    workflowStatus: z.string().optional(),
    exitCode: z.number().int().nullable().optional(),
    findings: z.record(z.string(), z.unknown()).nullable().optional(),
    error: z.string().nullable().optional(),
    createdAt: z.string().optional(),
    finishedAt: z.string().nullable().optional(),
  })
  .openapi('SandboxCheck');
type SandboxCheckView = z.infer<typeof SandboxCheckSchema>;

openApiRegistry.registerPath({
  method: 'post',
  path: '/diagnostics/sandbox-checks',
  summary: 'Start a sandbox check: a workflow that records a row and probes a hardened container',
  request: { body: { content: { 'application/json': { schema: StartSandboxCheckBodySchema } }, required: false } },
  responses: {
    202: jsonContent(SandboxCheckSchema, 'The check workflow was started'),
    200: jsonContent(SandboxCheckSchema, 'A check with this id exists already; nothing new was started'),
    400: errorResponse('The body is not valid'),
    415: errorResponse('The body is not JSON'),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/diagnostics/sandbox-checks/{checkId}',
  summary: 'The state and findings of a sandbox check',
  request: { params: CheckParamsSchema },
  responses: { 200: jsonContent(SandboxCheckSchema, 'The check'), 404: errorResponse('No such check') },
});

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
