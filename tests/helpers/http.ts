export interface JsonResponse {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

/** A real HTTP request over loopback; the body is parsed as JSON when the server says it is JSON. */
export async function request(
  baseUrl: string,
  method: string,
  path: string,
  options: { json?: unknown; rawBody?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined = options.rawBody;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const signal = options.timeoutMs === undefined ? null : AbortSignal.timeout(options.timeoutMs);
  const response = await fetch(`${baseUrl}${path}`, { method, headers, body, signal });
  const text = await response.text();
  const isJson = response.headers.get('content-type')?.includes('application/json') ?? false;
  return {
    status: response.status,
    headers: response.headers,
    body: isJson ? (JSON.parse(text) as unknown) : undefined,
    text,
  };
}

/** Asserts the API's error envelope and returns its code. */
export function errorCode(response: JsonResponse): string {
  const body = response.body as { success?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
  expect(body?.success).toBe(false);
  expect(typeof body?.error?.message).toBe('string');
  expect(response.text).not.toMatch(/\n\s+at /); // never a stack trace
  return String(body?.error?.code);
}
