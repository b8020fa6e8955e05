import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { RetentionReport, RetentionSettings } from './contract';

// Deletes go in batches and heartbeat between them; a failed run is simply the next one's work.
const records = proxyActivities<Pick<Activities, 'pruneRecords' | 'liveHostQueues'>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
});

/**
 * Workspaces live on each host's disk: its own worker removes them; a host that does not answer within a minute is
 * skipped.
 */
const workspacesOn = (taskQueue: string) =>
  proxyActivities<Pick<Activities, 'pruneHostWorkspaces'>>({
    taskQueue,
    scheduleToStartTimeout: '1 minute',
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '1 minute',
    retry: { maximumAttempts: 2 },
  });

/**
 * One retention run: removes event logs, transcripts and tool calls of agents that finished long
 * enough ago, old federation commands, events and spent nonces, then each host's old workspaces.
 */
export async function retention(settings: RetentionSettings): Promise<RetentionReport> {
  setCurrentDetails('pruning records');
  const pruned = await records.pruneRecords.executeWithOptions(
    { summary: 'prune events, transcripts, tool calls and federation records' },
    [settings],
  );
  const report: RetentionReport = { records: pruned, workspaces: {}, unreachableHosts: [] };
  for (const hostQueue of await records.liveHostQueues()) {
    setCurrentDetails(`pruning the workspaces of ${hostQueue}`);
    try {
      const summary = `remove workspaces finished over ${settings.workspaceHours} h ago on ${hostQueue}`;
      report.workspaces[hostQueue] = await workspacesOn(hostQueue).pruneHostWorkspaces.executeWithOptions({ summary }, [
        { retentionHours: settings.workspaceHours },
      ]);
    } catch {
      report.unreachableHosts.push(hostQueue);
    }
  }
  const total = (counts: Record<string, number>): number =>
    Object.values(counts).reduce((sum, count) => sum + count, 0);
  setCurrentDetails(`removed **${total({ ...pruned })}** records and ${total(report.workspaces)} workspaces`);
  return report;
}
