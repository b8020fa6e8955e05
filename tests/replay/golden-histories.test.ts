import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { AUTO_UPGRADE_WORKFLOWS } from '../../temporal/worker-deployment';
import * as workflows from '../../workflows';
import { CURRENT_HISTORIES_DIR, HISTORIES_ROOT } from '../helpers/histories';

Runtime.install({ logger: new DefaultLogger('ERROR') });

// Every kept version's histories (v0.2.0/agent-run-completed.json, ...).
const kept = readdirSync(HISTORIES_ROOT, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((version) =>
    readdirSync(path.join(HISTORIES_ROOT, version.name))
      .filter((file) => file.endsWith('.json'))
      .map((file) => {
        const text = readFileSync(path.join(HISTORIES_ROOT, version.name, file), 'utf8');
        const history = historyFromJSON(JSON.parse(text));
        const workflowType = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '';
        return { name: `${version.name}/${file}`, version: version.name, workflowType, history };
      }),
  );
const current = path.basename(CURRENT_HISTORIES_DIR);
// Today's code replays this version's histories, and those of older releases for the workflows that move to the newest
// version mid-run. A pinned run of an older release ends on that release's workers: its histories stay as its record.
const histories = kept.filter(
  (entry) => entry.version === current || AUTO_UPGRADE_WORKFLOWS.includes(entry.workflowType),
);

/**
 * Recorded histories of real runs must replay against today's workflow code: a change that would break running
 * workflows fails here.
 */
describe('golden workflow histories', () => {
  it('has recorded histories to replay', () => {
    const recorded = histories
      .filter((entry) => entry.name.startsWith(`${current}/`))
      .map((entry) => entry.name.slice(current.length + 1));
    expect(recorded).toEqual(
      expect.arrayContaining([
        'sandbox-check-passed.json',
        'agent-run-completed.json',
        'agent-run-killed.json',
        'agent-run-timed-out.json',
        'agent-run-retried-429.json',
        'agent-run-failed-401.json',
        'agent-run-continued-as-new.json',
        'agent-run-queued-then-admitted.json',
        'agent-run-streamed.json',
        'agent-run-for-hub.json',
        'agent-run-delivered.json',
        'agent-run-gated.json',
        'hub-event-delivery-completed.json',
        'federation-command-status.json',
        'federated-spawn-completed.json',
        'federated-spawn-killed.json',
        'federated-spawn-continued-as-new.json',
        'federated-spawn-spoke-down.json',
        'federated-spawn-kill-while-unreachable.json',
        'federated-spawn-paused-and-resumed.json',
        'federated-spawn-hub-deadline.json',
        'session-callbacks-completed.json',
      ]),
    );
  });

  it('replays every kept history of each auto-upgrading workflow, and knows which those are', () => {
    const declared = Object.entries(workflows)
      .filter(([, definition]) => {
        const options = (definition as { workflowDefinitionOptions?: { versioningBehavior?: string } })
          .workflowDefinitionOptions;
        return options?.versioningBehavior === 'AUTO_UPGRADE';
      })
      .map(([name]) => name);
    expect([...AUTO_UPGRADE_WORKFLOWS].sort()).toEqual(declared.sort());
    const older = kept.filter(
      (entry) => entry.version !== current && AUTO_UPGRADE_WORKFLOWS.includes(entry.workflowType),
    );
    for (const entry of older) expect(histories).toContain(entry);
  });

  it.each(histories)('$name replays deterministically', async ({ name, history }) => {
    const bundlePath = process.env.TEST_WORKFLOW_BUNDLE;
    const workflowBundle = bundlePath ? { code: readFileSync(bundlePath, 'utf8') } : undefined;
    await Worker.runReplayHistory(
      workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('../../workflows') },
      history,
      name.replace(/\.json$/, '').replace('/', '-'),
    );
  });

  it('fails on a workflow change that reorders its activities', async () => {
    const entry = histories.find((candidate) => candidate.name === `${current}/sandbox-check-passed.json`);
    const bundle = await bundleWorkflowCode({
      workflowsPath: path.resolve(__dirname, '../fixtures/nondeterministic-workflows'),
      logger: new DefaultLogger('ERROR'),
    });
    await expect(Worker.runReplayHistory({ workflowBundle: bundle }, entry?.history)).rejects.toBeInstanceOf(
      DeterminismViolationError,
    );
  });
});
