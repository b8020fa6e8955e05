import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import {
  ADMISSION_WORKFLOW,
  admissionWorkflowId,
  hostReportSignal,
  requestSlotUpdate,
  type HostReport,
  type SlotAnswer,
  type SlotRequest,
} from '../workflows/admission/contract';

/** The admission workflow of an instance, started by whichever caller comes first. */
function admissionStart(taskQueue: string) {
  return { workflowId: admissionWorkflowId(taskQueue), taskQueue, args: [] as [] };
}

/** Asks for a sandbox slot for an agent (idempotent): admitted on a host now, or queued behind others. */
export async function requestAdmission(client: Client, taskQueue: string, request: SlotRequest): Promise<SlotAnswer> {
  const startWorkflowOperation = new WithStartWorkflowOperation(ADMISSION_WORKFLOW, {
    ...admissionStart(taskQueue),
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return await client.workflow.executeUpdateWithStart(requestSlotUpdate, { args: [request], startWorkflowOperation });
}

/** A worker host tells the admission workflow that it is alive and how many sandboxes it runs. */
export async function reportHostCapacity(client: Client, taskQueue: string, report: HostReport): Promise<void> {
  await client.workflow.signalWithStart(ADMISSION_WORKFLOW, {
    ...admissionStart(taskQueue),
    signal: hostReportSignal,
    signalArgs: [report],
  });
}
