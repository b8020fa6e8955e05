import { parseArgs } from 'node:util';
import { issueAdminToken, issueApiToken } from '../api/auth';
import { loadConfig } from '../config/env';
import { runMain } from '../platform/main';
import { createPrismaClient } from '../prisma/client';

/**
 * npm run token -- --workspace <name> [--name <label>]   a workspace token (creates the workspace if needed)
 * npm run token -- --admin [--name <label>]              an instance administrator token
 * Prints a new API token; it is shown only now.
 */
runMain('token', async () => {
  const { values } = parseArgs({
    options: { workspace: { type: 'string' }, admin: { type: 'boolean' }, name: { type: 'string' } },
  });
  if (Boolean(values.workspace) === Boolean(values.admin))
    throw new Error('usage: npm run token -- --workspace <name> | --admin [--name <label>]');
  const prisma = createPrismaClient(loadConfig().DATABASE_URL);
  try {
    if (values.admin) {
      const issued = await issueAdminToken(prisma, values.name);
      process.stderr.write(`administrator token ${issued.tokenId}; store it now, it is not shown again:\n`);
      process.stdout.write(`${issued.token}\n`);
      return;
    }
    const issued = await issueApiToken(prisma, values.workspace ?? '', values.name);
    process.stderr.write(
      `workspace ${values.workspace} (${issued.workspaceId}), token ` +
        `${issued.tokenId}; store it now, it is not shown again:\n`,
    );
    process.stdout.write(`${issued.token}\n`);
  } finally {
    await prisma.$disconnect();
  }
});
