import { proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  sandboxCheckStatusQuery,
  type SandboxCheckInput,
  type SandboxCheckResult,
  type SandboxCheckStatus,
} from './contract';

const records = proxyActivities<Pick<Activities, 'recordSandboxCheckStarted' | 'recordSandboxCheckFinished'>>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 milliseconds', maximumAttempts: 10 },
});

const sandbox = proxyActivities<Pick<Activities, 'runSandboxProbe'>>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

/** Records the check, runs the confinement probe in a hardened sandbox, records the verdict. */
export async function sandboxCheck({ checkId }: SandboxCheckInput): Promise<SandboxCheckResult> {
  const status: SandboxCheckStatus = { checkId, state: 'pending', step: 'recording' };
  setHandler(sandboxCheckStatusQuery, () => status);
  const { workflowId } = workflowInfo();

  await records.recordSandboxCheckStarted({ checkId, workflowId });
  status.state = 'running';
  status.step = 'probing sandbox';

  const result = await sandbox.runSandboxProbe({ checkId, workflowId });
  status.step = 'recording result';
  await records.recordSandboxCheckFinished(result);

  status.state = result.state;
  status.step = 'done';
  status.result = result;
  return result;
}
