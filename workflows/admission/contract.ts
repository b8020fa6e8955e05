import { query, signal, update } from '../../shared/temporal-definitions';

/**
 * Admission of agents to sandbox slots: one `hostAdmission` workflow per instance (task queue) holds
 * every host's capacity and the queue of waiting agents. Agents ask with the `requestSlot` update
 * (the API asks first, to answer queued or spawning; the agent's workflow asks again, so an API crash
 * loses nothing), wait without polling for `slotGranted`, and give the slot back with `releaseSlot`.
 */
export const ADMISSION_WORKFLOW = 'hostAdmission';
export const admissionWorkflowId = (taskQueue: string): string => `admission-${taskQueue}`;

/** How often worker hosts report their capacity; a host silent for three reports gets no new agents. */
export const HOST_REPORT_INTERVAL_MS = 30_000;
export const HOST_SILENT_AFTER_MS = 3 * HOST_REPORT_INTERVAL_MS;

export interface SlotRequest {
  agentId: string;
  /** 1 (lowest) to 10 (highest); equal priorities are admitted first come, first served. */
  priority: number;
}

export type SlotAnswer = { state: 'admitted'; hostId: string } | { state: 'queued'; ahead: number };

export interface HostReport {
  hostId: string;
  /** Agent sandboxes this host runs at once (its MAX_CONCURRENT_AGENTS). */
  capacity: number;
}

export interface Waiter extends SlotRequest {
  /** Arrival order, for first come, first served within one priority. */
  seq: number;
}

export interface HostEntry {
  capacity: number;
  /** Workflow time (epoch ms) of the host's last report. */
  lastSeenAt: number;
}

/** Everything the admission workflow knows; carried across continue-as-new. */
export interface AdmissionState {
  hosts: Record<string, HostEntry>;
  /** The agents that hold a slot, on which host, and since when (workflow time, epoch ms; absent in older states). */
  holders: Array<{ agentId: string; hostId: string; since?: number }>;
  waiting: Waiter[];
  nextSeq: number;
}

export const requestSlotUpdate = update<SlotAnswer, [SlotRequest]>('requestSlot');
export const releaseSlotSignal = signal<[{ agentId: string }]>('releaseSlot');
export const hostReportSignal = signal<[HostReport]>('hostReport');
/** Sent to an agent's workflow when it may launch on `hostId`. */
export const slotGrantedSignal = signal<[{ hostId: string }]>('slotGranted');
export const admissionStateQuery = query<AdmissionState>('admissionState');
