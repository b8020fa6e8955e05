import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { PrismaClient } from '../prisma/client';
import { ApiError } from './errors';

/**
 * Bearer API tokens scoped to a workspace. Tokens are 256-bit random strings, so a plain SHA-256 is
 * enough to store them (no salt or slow hash needed); only the hash is kept.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface IssuedToken {
  workspaceId: string;
  tokenId: string;
  token: string;
}

/** Creates the workspace if it does not exist and a new token for it; the token is returned once. */
export async function issueApiToken(prisma: PrismaClient, workspaceName: string, label = 'default'): Promise<IssuedToken> {
  const workspace = await prisma.workspace.upsert({ where: { name: workspaceName }, create: { id: randomUUID(), name: workspaceName }, update: {} });
  const token = `aot_${randomBytes(32).toString('base64url')}`;
  const tokenId = randomUUID();
  await prisma.apiToken.create({ data: { id: tokenId, workspaceId: workspace.id, name: label, tokenHash: hashToken(token) } });
  return { workspaceId: workspace.id, tokenId, token };
}

/** The caller's workspace, set by requireApiToken. */
export function workspaceOf(res: Response): string {
  return (res.locals as { workspaceId: string }).workspaceId;
}

export function requireApiToken(prisma: PrismaClient): RequestHandler {
  return async (req, res, next) => {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!match?.[1]) throw new ApiError(401, 'unauthorized', 'A bearer API token is required (Authorization: Bearer <token>)');
    const token = await prisma.apiToken.findUnique({ where: { tokenHash: hashToken(match[1]) } });
    if (!token || token.revokedAt) throw new ApiError(401, 'unauthorized', 'The API token is not valid');
    (res.locals as { workspaceId: string }).workspaceId = token.workspaceId;
    next();
  };
}
