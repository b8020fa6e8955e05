import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Activities } from '../../activities';
import './test-log';

/**
 * Workflow tests: the real workflow code (the run's bundle) on the real Temporal dev server, with
 * activities replaced by a test's stubs. No Docker, PostgreSQL or model: each test takes well under a
 * second unless it waits for a workflow timer on purpose. (Temporal's time-skipping test server is a
 * download this machine cannot make, so timers here are real and the tests keep them short.)
 */
export type StubActivities = Partial<Activities>;

export interface WorkflowEnv {
  client: Client;
  /** A task queue of this test's own, so tests never take each other's tasks. */
  taskQueue: string;
  /** Starts workers on `queues` (the test's queue and, say, a host's queue) with `activities`, until close. */
  startWorkers(
    activities: StubActivities,
    queues: string[],
    version?: { deploymentName: string; buildId: string },
  ): Promise<void>;
  close(): Promise<void>;
}

export async function workflowEnv(): Promise<WorkflowEnv> {
  const address = process.env.TEST_TEMPORAL_ADDRESS ?? '';
  const codePath = process.env.TEST_WORKFLOW_BUNDLE ?? '';
  const native = await NativeConnection.connect({ address });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const running: Array<{ worker: Worker; done: Promise<void> }> = [];
  return {
    client,
    taskQueue: `workflow-test-${randomUUID()}`,
    async startWorkers(activities, queues, version) {
      for (const taskQueue of queues) {
        const worker = await Worker.create({
          connection: native,
          taskQueue,
          workflowBundle: { codePath },
          activities,
          // Heartbeats (and so cancellations) reach the stubs within a tenth of a second.
          maxHeartbeatThrottleInterval: '100 milliseconds',
          defaultHeartbeatThrottleInterval: '100 milliseconds',
          ...(version
            ? { workerDeploymentOptions: { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } }
            : {}),
        });
        running.push({ worker, done: worker.run() });
      }
    },
    async close() {
      for (const { worker } of running) worker.shutdown();
      await Promise.all(running.map(({ done }) => done));
      await connection.close();
      await native.close();
    },
  };
}

/** An activity stub that heartbeats until the workflow cancels it (as a long tool or model call does). */
export async function untilCancelled(): Promise<never> {
  const context = Context.current();
  for (;;) {
    context.heartbeat();
    await context.sleep(50);
  }
}

/** Resolves once `check` holds, polling every 20 ms (up to `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
