import { parseArgs } from 'node:util';
import { issueApiToken } from '../api/auth';
import { loadConfig } from '../config/env';
import { runMain } from '../platform/main';
import { createPrismaClient } from '../prisma/client';

/**
 * npm run token -- --workspace <name> [--name <label>]
 * Creates the workspace if needed and prints a new API token for it. The token is shown only now.
 */
runMain('token', async () => {
  const { values } = parseArgs({ options: { workspace: { type: 'string' }, name: { type: 'string' } } });
  if (!values.workspace) throw new Error('usage: npm run token -- --workspace <name> [--name <label>]');
  const prisma = createPrismaClient(loadConfig().DATABASE_URL);
  try {
    const issued = await issueApiToken(prisma, values.workspace, values.name);
    process.stderr.write(`workspace ${values.workspace} (${issued.workspaceId}), token ${issued.tokenId}; store it now, it is not shown again:\n`);
    process.stdout.write(`${issued.token}\n`);
  } finally {
    await prisma.$disconnect();
  }
});
