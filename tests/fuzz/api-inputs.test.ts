import fc from 'fast-check';
import { issueApiToken } from '../../api/auth';
import { request, type JsonResponse } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/**
 * Property-based fuzzing (fast-check) of the public inputs: bodies, queries and path parameters of
 * the REST endpoints, and the incoming federation envelope with its signature headers. Whatever
 * arrives: no 5xx, the process stays up, every refusal is a JSON error without a stack trace, and
 * nothing starts. FUZZ_RUNS sets the runs per property (default 60 here; e.g. FUZZ_RUNS=5000 for a long run).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const settings = { numRuns: RUNS, seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined };

/** Values that a JSON body could hold, weighted toward the shapes the schemas expect. */
const anyJson = fc.jsonValue({ maxDepth: 4 });
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '..', '-rf', 'main', '../etc', '%00', '\u0000', 'a'.repeat(300)),
);

/** A spawn body near the valid one: each field valid, missing, or replaced by something else. */
const spawnBody = fc.record(
  {
    taskId: fc.oneof(fc.constant('fuzz-task'), text, anyJson),
    agentType: fc.oneof(fc.constantFrom('worker', 'reviewer', 'tester', 'admin', ''), anyJson),
    context: fc.oneof(
      fc.record(
        {
          repository: fc.oneof(text, fc.constantFrom('/nonexistent/repo', 'ftp://x/y', 'file:///etc')),
          branch: text,
          workItems: fc.oneof(fc.array(text, { maxLength: 3 }), anyJson),
        },
        { requiredKeys: [] },
      ),
      anyJson,
    ),
    priority: fc.oneof(fc.integer({ min: -5, max: 20 }), anyJson),
    options: fc.oneof(
      fc.record(
        { timeout: fc.oneof(fc.integer(), anyJson), maxRetries: fc.oneof(fc.integer(), anyJson), resources: anyJson },
        { requiredKeys: [] },
      ),
      anyJson,
    ),
    extra: anyJson,
  },
  { requiredKeys: [] },
);

function expectRefusedCleanly(response: JsonResponse): void {
  expect(response.status).toBeLessThan(500);
  if (response.status >= 400) {
    expect(response.headers.get('content-type') ?? '').toContain('application/json');
    const body = response.body as { error?: { code?: unknown; message?: unknown } } | undefined;
    expect(typeof body?.error?.code).toBe('string');
    expect(typeof body?.error?.message).toBe('string');
    expect(response.text).not.toMatch(/\n\s+at .+:\d+:\d+/);
  }
}

describe('fuzzing every public input', () => {
  let instance: TestInstance;
  let token: string;

  beforeAll(async () => {
    // No worker: if a fuzzed spawn were ever accepted, its row would show it, and nothing would run.
    instance = await startTestInstance({}, { worker: false });
    ({ token } = await issueApiToken(instance.prisma, `fuzz-${Date.now()}`));
  });
  afterAll(async () => {
    await instance.stop();
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const nothingStarted = async (): Promise<void> => {
    expect(await instance.prisma.agent.count()).toBe(0);
    expect(await instance.prisma.session.count()).toBe(0);
  };

  it('answers any spawn body (agents, sessions, federated agents) with a clean 4xx and starts nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(spawnBody, anyJson),
        fc.constantFrom('/agents/spawn', '/orchestrator/sessions/spawn', '/api/v1/federation/agents/spawn'),
        async (body, path) => {
          expectRefusedCleanly(await request(instance.baseUrl, 'POST', path, { json: body, headers: auth() }));
        },
      ),
      settings,
    );
    await nothingStarted();
  });

  it('answers any raw body bytes and content type with a clean 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
        async (raw, contentType) => {
          const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
            rawBody: raw,
            headers: { ...auth(), ...(contentType ? { 'content-type': contentType } : {}) },
          });
          expectRefusedCleanly(response);
        },
      ),
      settings,
    );
    await nothingStarted();
  });

  it('answers any path parameter and query with 2xx or a clean 4xx', async () => {
    const segment = fc
      .oneof(
        text,
        fc.uuid().map((id) => `agent-${id}`),
      )
      .map((value) => encodeURIComponent(value));
    const query = fc.dictionary(
      fc.constantFrom('state', 'taskId', 'agentType', 'limit', 'cursor', 'lastEventId', 'follow', 'x'),
      text,
      { maxKeys: 4 },
    );
    await fc.assert(
      fc.asyncProperty(
        segment,
        query,
        fc.constantFrom(
          'GET /agents/:id/status',
          'POST /agents/:id/kill',
          'GET /agents/:id/events',
          'GET /orchestrator/sessions/:id/status',
          'POST /orchestrator/sessions/:id/kill',
          'GET /agents',
          'GET /orchestrator/sessions',
          'GET /api/v1/federation/commands/:id',
          'POST /api/v1/federation/connections/:id/accept',
        ),
        async (id, params, route) => {
          const [method = 'GET', pattern = '/'] = route.split(' ');
          const search = new URLSearchParams(params).toString();
          const response = await request(
            instance.baseUrl,
            method,
            `${pattern.replace(':id', id)}${search ? `?${search}` : ''}`,
            { headers: auth() },
          );
          expectRefusedCleanly(response);
        },
      ),
      settings,
    );
    await nothingStarted();
  });

  it(
    'answers any incoming federation envelope and signature headers with a ' + 'clean refusal, recording no connection',
    async () => {
      const envelope = fc.record(
        {
          messageId: fc.oneof(fc.uuid(), text),
          instanceId: fc.oneof(fc.uuid(), text),
          commandType: fc.oneof(
            fc.constantFrom('agent.spawn', 'agent.status', 'agent.kill', 'connection.request'),
            text,
          ),
          payload: anyJson,
          timestamp: fc.oneof(
            fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
            text,
          ),
          nonce: text,
        },
        { requiredKeys: [] },
      );
      // What an HTTP header can carry at all (fetch refuses control characters before sending).
      const headerText = text.map((value) => value.replace(/[^\x20-\x7e]/g, ''));
      const headers = fc.record(
        {
          'signature-input': fc.oneof(
            headerText,
            fc.constant('sig1=("@method" "@authority" "@path" "content-digest");created=1;keyid="k";alg="ed25519"'),
          ),
          signature: fc.oneof(headerText, fc.constant('sig1=:AAAA:')),
          'content-digest': fc.oneof(headerText, fc.constant('sha-256=:AAAA:')),
          'content-type': fc.constantFrom('application/json', 'text/plain'),
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(envelope, anyJson),
          headers,
          fc.constantFrom(
            '/api/v1/federation/incoming/command',
            '/api/v1/federation/incoming/event',
            '/api/v1/federation/handshake',
          ),
          async (body, extraHeaders, path) => {
            const response = await request(instance.baseUrl, 'POST', path, {
              rawBody: JSON.stringify(body),
              headers: extraHeaders,
            });
            expectRefusedCleanly(response);
            expect(response.status).toBeGreaterThanOrEqual(400);
          },
        ),
        settings,
      );
      expect(await instance.prisma.federationConnection.count()).toBe(0);
      await nothingStarted();
    },
  );
});
