import { z } from 'zod';
import { errorResponse, jsonContent, openApiRegistry } from '../openapi';

/**
 * The sandbox checks endpoints' request and response schemas and their OpenAPI
 * registration: the single source of validation, types and the document at /openapi.json.
 */
const CheckIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be 1-64 lowercase letters, digits or dashes');

export const StartSandboxCheckBodySchema = z
  .strictObject({ checkId: CheckIdSchema.optional() })
  .openapi('StartSandboxCheck', { description: 'Optional checkId makes the start idempotent' });

export const CheckParamsSchema = z.object({ checkId: CheckIdSchema });

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
export type SandboxCheckView = z.infer<typeof SandboxCheckSchema>;

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
