import type { z } from 'zod';

/** A zod error as one line that names every offending field, "path: message; …" (`root` names the value itself). */
export function describeIssues(error: z.ZodError, root = ''): string {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : root}: ${issue.message}`).join('; ');
}
