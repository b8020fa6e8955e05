import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../config/env';
import { RELEASE } from '../../config/release';
import { currentBuildId, isNewer, promoteWhenNewer } from '../../temporal/worker-deployment';
import { ADMISSION_WORKFLOW, admissionStateQuery, hostReportSignal } from '../../workflows/admission/contract';
import { SANDBOX_CHECK_WORKFLOW, type SandboxCheckResult } from '../../workflows/sandbox-check/contract';
import { eventually, workflowEnv, type StubActivities, type WorkflowEnv } from '../helpers/workflow-env';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Worker Deployment Versioning on the real server: a run stays on the version that started it while
 * a newer one becomes current; the admission loop moves to the newer one; an older worker that
 * starts again never takes the current version back.
 */

let env: WorkflowEnv;
const deploymentName = `versioning-test-${randomUUID()}`;
const configFor = (buildId: string) =>
  loadConfig({ TASK_QUEUE: 'unused', WORKER_DEPLOYMENT_NAME: deploymentName, WORKER_BUILD_ID: buildId });

/** The probe activity blocks until released; every activity notes the version whose worker ran it. */
const ran: Array<{ activity: string; buildId: string }> = [];
let releaseProbe = (): void => undefined;
const probeReleased = new Promise<void>((resolve) => {
  releaseProbe = resolve;
});
function stubsOf(buildId: string): StubActivities {
  return {
    recordSandboxCheckStarted: () => {
      ran.push({ activity: 'started', buildId });
      return Promise.resolve();
    },
    async runSandboxProbe({ checkId }): Promise<SandboxCheckResult> {
      ran.push({ activity: 'probe', buildId });
      await probeReleased;
      return { checkId, state: 'passed', exitCode: 0, findings: null };
    },
    recordSandboxCheckFinished: () => {
      ran.push({ activity: 'finished', buildId });
      return Promise.resolve();
    },
  };
}

beforeAll(async () => {
  env = await workflowEnv();
});
afterAll(async () => {
  releaseProbe();
  await env.close();
});

const versionOf = async (workflowId: string): Promise<{ behavior: unknown; buildId: string | null | undefined }> => {
  const { raw } = await env.client.workflow.getHandle(workflowId).describe();
  const info = raw.workflowExecutionInfo?.versioningInfo;
  return { behavior: info?.behavior, buildId: info?.deploymentVersion?.buildId };
};

describe('worker deployment versions', () => {
  it('keeps a run on the version that started it and moves the admission loop to the newer one', async () => {
    const { taskQueue, client } = env;
    await env.startWorkers(stubsOf('v1.0.0'), [taskQueue], { deploymentName, buildId: 'v1.0.0' });
    expect(await promoteWhenNewer(client, configFor('v1.0.0'), { retryMs: 200 })).toBe('promoted');

    const pinned = `check-${randomUUID()}`;
    await client.workflow.start(SANDBOX_CHECK_WORKFLOW, { taskQueue, workflowId: pinned, args: [{ checkId: pinned }] });
    const admission = `admission-${randomUUID()}`;
    await client.workflow.start(ADMISSION_WORKFLOW, { taskQueue, workflowId: admission, args: [] });
    await eventually(() => ran.some((entry) => entry.activity === 'probe'));
    await eventually(async () => (await versionOf(admission)).buildId === 'v1.0.0');

    await env.startWorkers(stubsOf('v2.0.0'), [taskQueue], { deploymentName, buildId: 'v2.0.0' });
    expect(await promoteWhenNewer(client, configFor('v2.0.0'), { retryMs: 200 })).toBe('promoted');
    expect(await currentBuildId(client, 'default', deploymentName)).toBe('v2.0.0');

    // The running check finishes on v1; a new one runs on v2.
    releaseProbe();
    await client.workflow.getHandle(pinned).result();
    expect(ran.filter((entry) => entry.activity === 'finished')).toEqual([{ activity: 'finished', buildId: 'v1.0.0' }]);
    expect(await versionOf(pinned)).toMatchObject({ buildId: 'v1.0.0' });
    const fresh = `check-${randomUUID()}`;
    await client.workflow.execute(SANDBOX_CHECK_WORKFLOW, { taskQueue, workflowId: fresh, args: [{ checkId: fresh }] });
    expect(ran.filter((entry) => entry.activity === 'started').map((entry) => entry.buildId)).toEqual([
      'v1.0.0',
      'v2.0.0',
    ]);

    // The admission loop's next task runs on v2, its state intact.
    await client.workflow.getHandle(admission).signal(hostReportSignal, { hostId: 'h1', capacity: 3 });
    await eventually(async () => (await versionOf(admission)).buildId === 'v2.0.0');
    expect((await client.workflow.getHandle(admission).query(admissionStateQuery)).hosts.h1?.capacity).toBe(3);

    // A v1 worker that starts again leaves v2 current.
    expect(await promoteWhenNewer(client, configFor('v1.0.0'), { retryMs: 200 })).toBe('kept');
    expect(await currentBuildId(client, 'default', deploymentName)).toBe('v2.0.0');
    await client.workflow.getHandle(admission).terminate('test over');
  });

  it('orders releases by number and never replaces a build id it cannot compare', () => {
    expect(isNewer('v0.10.0', 'v0.9.9')).toBe(true);
    expect(isNewer('v0.2.0', 'v0.2.0')).toBe(false);
    expect(isNewer('v0.2.0', null)).toBe(true);
    expect(isNewer('v1.0.0', 'nightly-42')).toBe(false);
    expect(isNewer('nightly-43', 'nightly-42')).toBe(false);
  });

  it('names the release the package is', () => {
    const { version } = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    expect(RELEASE).toBe(`v${version}`);
  });
});
