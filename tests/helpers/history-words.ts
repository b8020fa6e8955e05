import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';

/**
 * The summaries of a workflow's scheduled activities and started timers, in history order: what the Web UI shows for
 * each step.
 */
export async function stepSummaries(client: Client, workflowId: string, runId?: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const summaries: string[] = [];
  for (const event of history.events ?? []) {
    const summary = event.userMetadata?.summary;
    if (summary && (event.activityTaskScheduledEventAttributes || event.timerStartedEventAttributes)) {
      summaries.push(defaultPayloadConverter.fromPayload<string>(summary));
    }
  }
  return summaries;
}

/** The workflow's own summary and details, as the Web UI's header shows them. */
export async function workflowWords(
  client: Client,
  workflowId: string,
): Promise<{ summary: string | undefined; details: string | undefined }> {
  const description = await client.workflow.getHandle(workflowId).describe();
  return { summary: await description.staticSummary(), details: await description.staticDetails() };
}

/** The workflow's current details (setCurrentDetails), read through the built-in metadata query. */
export async function currentDetails(client: Client, workflowId: string): Promise<string> {
  const metadata = await client.workflow
    .getHandle(workflowId)
    .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return metadata.currentDetails ?? '';
}
