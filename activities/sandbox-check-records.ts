import type { PrismaClient } from '../prisma/client';
import type { SandboxCheckResult } from '../workflows/sandbox-check/contract';

/** Persistence of sandbox checks. Both activities are idempotent: a retry rewrites the same row. */
export function createSandboxCheckRecordActivities(prisma: PrismaClient) {
  return {
    async recordSandboxCheckStarted(input: { checkId: string; workflowId: string }): Promise<void> {
      await prisma.sandboxCheck.upsert({
        where: { id: input.checkId },
        create: { id: input.checkId, workflowId: input.workflowId, state: 'running' },
        update: { state: 'running' },
      });
    },

    async recordSandboxCheckFinished(result: SandboxCheckResult): Promise<void> {
      await prisma.sandboxCheck.update({
        where: { id: result.checkId },
        data: {
          state: result.state,
          exitCode: result.exitCode,
          findings: result.findings ?? undefined,
          error: result.error ?? null,
          finishedAt: new Date(),
        },
      });
    },
  };
}
