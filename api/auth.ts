import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { PrismaClient } from '../prisma/client';
import { ApiError } from './errors';

/**
 * Bearer API tokens. A workspace token acts in its workspace (agents, its connections, commands); an
 * administrator token acts on the instance (key rotation, accepting or rejecting a peer's request,
 * diagnostics, readiness details) and in no workspace. Tokens are 256-bit random strings, so a plain
 * SHA-256 is enough to store them (no salt or slow hash needed); only the hash is kept.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface IssuedToken {
  workspaceId: string;
  tokenId: string;
  token: string;
}

const newToken = (): string => `aot_${randomBytes(32).toString('base64url')}`;

/** Creates the workspace if it does not exist and a new token for it; the token is returned once. */
export async function issueApiToken(
  prisma: PrismaClient,
  workspaceName: string,
  label = 'default',
): Promise<IssuedToken> {
  const workspace = await prisma.workspace.upsert({
    where: { name: workspaceName },
    create: { id: randomUUID(), name: workspaceName },
    update: {},
  });
  const token = newToken();
  const tokenId = randomUUID();
  await prisma.apiToken.create({
    data: { id: tokenId, workspaceId: workspace.id, role: 'workspace', name: label, tokenHash: hashToken(token) },
  });
  return { workspaceId: workspace.id, tokenId, token };
}

/** A new instance administrator token; returned once. */
export async function issueAdminToken(
  prisma: PrismaClient,
  label = 'admin',
): Promise<{ tokenId: string; token: string }> {
  const token = newToken();
  const tokenId = randomUUID();
  await prisma.apiToken.create({
    data: { id: tokenId, workspaceId: null, role: 'admin', name: label, tokenHash: hashToken(token) },
  });
  return { tokenId, token };
}

export type Caller = { role: 'workspace'; workspaceId: string } | { role: 'admin' };

async function callerOf(prisma: PrismaClient, req: Request): Promise<Caller | null> {
  const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  if (!match?.[1]) return null;
  const token = await prisma.apiToken.findUnique({ where: { tokenHash: hashToken(match[1]) } });
  if (!token || token.revokedAt) return null;
  if (token.role === 'admin') return { role: 'admin' };
  return token.workspaceId ? { role: 'workspace', workspaceId: token.workspaceId } : null;
}

/** The caller of a request that must carry a valid token of either kind. */
async function authenticated(prisma: PrismaClient, req: Request, res: Response): Promise<Caller> {
  if (!req.headers.authorization)
    throw new ApiError(401, 'unauthorized', 'A bearer API token is required (Authorization: Bearer <token>)');
  const caller = await callerOf(prisma, req);
  if (!caller) throw new ApiError(401, 'unauthorized', 'The API token is not valid');
  (res.locals as { caller: Caller }).caller = caller;
  return caller;
}

/** Requires a valid token of either kind; routes then ask for the kind they need (workspaceOf, requireAdmin). */
export function authenticate(prisma: PrismaClient): RequestHandler {
  return async (req, res, next) => {
    await authenticated(prisma, req, res);
    next();
  };
}

/** Like authenticate, but a request without a valid token (or while tokens cannot be checked) goes on as anonymous. */
export function authenticateIfPresent(prisma: PrismaClient): RequestHandler {
  return async (req, res, next) => {
    const caller = req.headers.authorization ? await callerOf(prisma, req).catch(() => null) : null;
    if (caller) (res.locals as { caller: Caller }).caller = caller;
    next();
  };
}

export function callerOfResponse(res: Response): Caller | undefined {
  return (res.locals as { caller?: Caller }).caller;
}

/** The caller's workspace; an administrator token has none and is refused here. */
export function workspaceOf(res: Response): string {
  const caller = callerOfResponse(res);
  if (caller?.role !== 'workspace')
    throw new ApiError(
      403,
      'workspace_token_required',
      'This acts in a workspace: use a workspace token (npm run token -- --workspace <name>)',
    );
  return caller.workspaceId;
}

/** Instance-wide operations need an administrator token. */
export function requireAdmin(res: Response): void {
  if (callerOfResponse(res)?.role !== 'admin')
    throw new ApiError(
      403,
      'admin_required',
      'This is an instance-wide operation: use an administrator token (npm run token -- --admin)',
    );
}

/** Requires a workspace token (the routes of agents and of a workspace's federation). */
export function requireApiToken(prisma: PrismaClient): RequestHandler {
  return async (req, res, next) => {
    await authenticated(prisma, req, res);
    workspaceOf(res);
    next();
  };
}

/** Requires an administrator token. */
export function requireAdminToken(prisma: PrismaClient): RequestHandler {
  return async (req, res, next) => {
    await authenticated(prisma, req, res);
    requireAdmin(res);
    next();
  };
}
