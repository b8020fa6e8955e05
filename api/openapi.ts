import { extendZodWithOpenApi, OpenApiGeneratorV31, OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { RELEASE } from '../config/release';

extendZodWithOpenApi(z);

/** Route modules register their zod schemas here; the document served at /openapi.json is built from it. */
export const openApiRegistry = new OpenAPIRegistry();

export const ErrorResponseSchema = z
  .object({
    success: z.literal(false),
    error: z.object({ code: z.string(), message: z.string() }),
  })
  .openapi('ErrorResponse');

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function errorResponse(description: string) {
  return jsonContent(ErrorResponseSchema, description);
}

export function openApiDocument(): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  return new OpenApiGeneratorV31(openApiRegistry.definitions).generateDocument({
    openapi: '3.1.0',
    info: { title: 'Agent orchestrator API', version: RELEASE.replace(/^v/, '') },
  });
}
