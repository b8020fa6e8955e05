import { issueAdminToken, issueApiToken } from '../api/auth';
import { loadConfig } from '../config/env';
import { createPrismaClient } from '../prisma/client';

/** `orchestrator token`: a new API token, written to the instance's database (run it where the instance runs). */
export async function createToken(
  kind: { admin: true } | { workspace: string },
): Promise<{ token: string; tokenId: string; workspace?: string }> {
  const prisma = createPrismaClient(loadConfig().DATABASE_URL);
  try {
    if ('admin' in kind) {
      const issued = await issueAdminToken(prisma);
      return { token: issued.token, tokenId: issued.tokenId };
    }
    const issued = await issueApiToken(prisma, kind.workspace);
    return { token: issued.token, tokenId: issued.tokenId, workspace: kind.workspace };
  } finally {
    await prisma.$disconnect();
  }
}
