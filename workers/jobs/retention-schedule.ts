import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { AppConfig } from '../../config/env';
import { RETENTION_WORKFLOW, retentionScheduleId, type RetentionSettings } from '../../workflows/retention/contract';

export const retentionSettings = (config: AppConfig): RetentionSettings => ({
  eventHours: config.EVENT_RETENTION_HOURS,
  transcriptHours: config.TRANSCRIPT_RETENTION_HOURS,
  federationHours: config.FEDERATION_RETENTION_HOURS,
  workspaceHours: config.WORKSPACE_RETENTION_HOURS,
});

/**
 * Creates the instance's retention schedule, or brings an existing one up to the current settings
 * (each worker does so when it starts: the newest deploy's settings win). A run that is still going
 * when the next is due makes that one skip.
 */
export async function ensureRetentionSchedule(client: Client, config: AppConfig): Promise<void> {
  const settings = retentionSettings(config);
  const scheduleId = retentionScheduleId(config.TASK_QUEUE);
  const options: ScheduleOptions = {
    scheduleId,
    spec: { intervals: [{ every: `${config.RETENTION_INTERVAL_MINUTES} minutes` }] },
    action: {
      type: 'startWorkflow',
      workflowType: RETENTION_WORKFLOW,
      workflowId: `retention-run-${config.TASK_QUEUE}`,
      taskQueue: config.TASK_QUEUE,
      args: [settings],
      staticSummary:
        `retention: events ${settings.eventHours} h, transcripts ` +
        `${settings.transcriptHours} h, federation ${settings.federationHours} ` +
        `h, workspaces ${settings.workspaceHours} h`,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    state: {
      note: 'prunes event logs, transcripts, tool calls, federation records and workspaces past their retention',
    },
  };
  try {
    await client.schedule.create(options);
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule
      .getHandle(scheduleId)
      .update((previous) => ({ ...previous, spec: options.spec, action: options.action, policies: options.policies }));
  }
}
