import { WorkflowNotFoundError } from '@temporalio/client';
import { SANDBOX_LABEL_WORKFLOW } from '../../sandbox-runtime/container-spec';
import {
  sandboxCheckStatusQuery,
  sandboxCheckWorkflowId,
  type SandboxCheckResult,
} from '../../workflows/sandbox-check/contract';
import { issueAdminToken } from '../../api/auth';
import { recordHistoryIfRequested } from '../helpers/histories';
import { errorCode, request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';

/**
 * The vertical slice through the real services: the API starts a workflow on the real Temporal
 * server, the worker runs it, one activity writes through Prisma to PostgreSQL and another runs the
 * confinement probe in a hardened container on the real Docker engine.
 */
describe('sandbox check, end to end', () => {
  let instance: TestInstance;
  let adminToken: string;

  beforeAll(async () => {
    instance = await startTestInstance();
    adminToken = (await issueAdminToken(instance.prisma)).token;
  });

  /** Diagnostics are the instance administrator's. */
  const diagnostics = (
    method: string,
    path: string,
    options: { json?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
  ) =>
    request(instance.baseUrl, method, path, {
      ...options,
      headers: { ...options.headers, authorization: `Bearer ${adminToken}` },
    });
  afterAll(async () => {
    await instance.stop();
  });

  async function workflowCount(): Promise<number> {
    const { count } = await instance.temporal.workflow.count(`TaskQueue = "${instance.taskQueue}"`);
    return count;
  }

  it('runs the check through API, Temporal, PostgreSQL and a hardened sandbox', async () => {
    const started = await diagnostics('POST', '/diagnostics/sandbox-checks', { json: {} });
    expect(started.status).toBe(202);
    const { checkId, workflowId } = started.body as { checkId: string; workflowId: string };
    expect(workflowId).toBe(sandboxCheckWorkflowId(checkId));

    const handle = instance.temporal.workflow.getHandle(workflowId);
    const result = (await handle.result()) as SandboxCheckResult;
    await recordHistoryIfRequested(workflowId, 'sandbox-check-passed');
    expect(result.error).toBeUndefined();
    expect(result.state).toBe('passed');
    expect(result.exitCode).toBe(0);
    expect(result.findings).toEqual({
      uid: 10001,
      nonRoot: true,
      rootFilesystemReadOnly: true,
      workspaceWritable: true,
      tmpNoExec: true,
      noNetwork: true,
      noCapabilities: true,
      noNewPrivileges: true,
      toolsPresent: { sh: true, git: true, python3: true, node: true },
    });

    // The row written through Prisma.
    const row = await instance.prisma.sandboxCheck.findUniqueOrThrow({ where: { id: checkId } });
    expect(row.state).toBe('passed');
    expect(row.finishedAt).not.toBeNull();

    // The status query answers from workflow memory.
    const status = await handle.query(sandboxCheckStatusQuery);
    expect(status).toMatchObject({ checkId, state: 'passed', step: 'done' });

    // The API view joins the row and the workflow status.
    const view = await diagnostics('GET', `/diagnostics/sandbox-checks/${checkId}`);
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({ checkId, workflowId, state: 'passed', workflowStatus: 'COMPLETED', exitCode: 0 });

    // No container is left behind.
    const leftovers = await instance.docker.listContainers({
      all: true,
      filters: { label: [`${SANDBOX_LABEL_WORKFLOW}=${workflowId}`] },
    });
    expect(leftovers).toEqual([]);
  });

  it('is idempotent for a client-chosen checkId', async () => {
    const checkId = `idem-${Date.now()}`;
    const first = await diagnostics('POST', '/diagnostics/sandbox-checks', { json: { checkId } });
    expect(first.status).toBe(202);
    const handle = instance.temporal.workflow.getHandle(sandboxCheckWorkflowId(checkId));
    const { runId } = await handle.describe();
    await handle.result();

    const second = await diagnostics('POST', '/diagnostics/sandbox-checks', { json: { checkId } });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ checkId, state: 'passed' });
    expect((await handle.describe()).runId).toBe(runId);
  });

  it.each([
    ['an invalid checkId', { json: { checkId: 'Not An Id!' } }, 400, 'validation_failed'],
    ['an unknown field', { json: { checkId: 'ok-id', extra: true } }, 400, 'validation_failed'],
    ['a non-object body', { json: ['checkId'] }, 400, 'validation_failed'],
    [
      'malformed JSON',
      { rawBody: '{"checkId": ', headers: { 'content-type': 'application/json' } },
      400,
      'invalid_json',
    ],
    [
      'a non-JSON content type',
      { rawBody: 'checkId=x', headers: { 'content-type': 'text/plain' } },
      415,
      'unsupported_media_type',
    ],
    ['an oversized body', { json: { checkId: 'x'.repeat(300 * 1024) } }, 413, 'payload_too_large'],
  ])('rejects %s with a JSON 4xx and starts nothing', async (_name, options, status, code) => {
    const before = await workflowCount();
    const rowsBefore = await instance.prisma.sandboxCheck.count();
    const response = await diagnostics('POST', '/diagnostics/sandbox-checks', options);
    expect(response.status).toBe(status);
    expect(errorCode(response)).toBe(code);
    expect(await workflowCount()).toBe(before);
    expect(await instance.prisma.sandboxCheck.count()).toBe(rowsBefore);
  });

  it('answers 404 for an unknown check and 400 for a malformed id', async () => {
    const unknown = await diagnostics('GET', '/diagnostics/sandbox-checks/never-started');
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('not_found');
    await expect(
      instance.temporal.workflow.getHandle(sandboxCheckWorkflowId('never-started')).describe(),
    ).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const malformed = await diagnostics('GET', '/diagnostics/sandbox-checks/BAD%20ID');
    expect(malformed.status).toBe(400);
    expect(errorCode(malformed)).toBe('invalid_parameter');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const response = await request(instance.baseUrl, 'GET', '/no/such/route');
    expect(response.status).toBe(404);
    expect(errorCode(response)).toBe('not_found');
  });
});
