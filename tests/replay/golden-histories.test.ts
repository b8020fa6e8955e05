import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { HISTORIES_DIR } from '../helpers/histories';

Runtime.install({ logger: new DefaultLogger('ERROR') });

const histories = readdirSync(HISTORIES_DIR)
  .filter((file) => file.endsWith('.json'))
  .map((file) => ({ name: file, history: historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8'))) }));

/** Recorded histories of real runs must replay against today's workflow code: a change that would break running workflows fails here. */
describe('golden workflow histories', () => {
  it('has recorded histories to replay', () => {
    expect(histories.map((entry) => entry.name)).toEqual(
      expect.arrayContaining([
        'sandbox-check-passed.json',
        'agent-run-completed.json',
        'agent-run-killed.json',
        // Before a kill removed the sandbox at once (the patch kill-removes-sandbox-at-once).
        'agent-run-killed-waiting-for-heartbeat.json',
        'agent-run-timed-out.json',
        'agent-run-retried-429.json',
        'agent-run-failed-401.json',
        'agent-run-continued-as-new.json',
        // Model calls streamed on the sandbox's host (the patch model-calls-on-sandbox-host).
        'agent-run-streamed.json',
        'agent-run-for-hub.json',
        'hub-event-delivery-completed.json',
        'federation-command-status.json',
        'federated-spawn-completed.json',
        'federated-spawn-killed.json',
        'federated-spawn-continued-as-new.json',
        'federated-spawn-spoke-down.json',
        'federated-spawn-kill-while-unreachable.json',
        'federated-spawn-paused-and-resumed.json',
        'federated-spawn-hub-deadline.json',
      ]),
    );
  });

  it.each(histories)('$name replays deterministically', async ({ name, history }) => {
    const bundlePath = process.env.TEST_WORKFLOW_BUNDLE;
    const workflowBundle = bundlePath ? { code: readFileSync(bundlePath, 'utf8') } : undefined;
    await Worker.runReplayHistory(
      workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('../../workflows') },
      history,
      name.replace(/\.json$/, ''),
    );
  });

  it('fails on a workflow change that reorders its activities', async () => {
    const entry = histories.find((candidate) => candidate.name === 'sandbox-check-passed.json');
    const bundle = await bundleWorkflowCode({
      workflowsPath: path.resolve(__dirname, '../fixtures/nondeterministic-workflows'),
      logger: new DefaultLogger('ERROR'),
    });
    await expect(Worker.runReplayHistory({ workflowBundle: bundle }, entry?.history)).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
