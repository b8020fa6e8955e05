/**
 * Retention: every table that grows with use is pruned by the `retention` workflow, which a Temporal
 * Schedule per instance starts every RETENTION_INTERVAL_MINUTES (the Web UI lists it under Schedules).
 */
export const RETENTION_WORKFLOW = 'retention';
export const retentionScheduleId = (taskQueue: string): string => `retention-${taskQueue}`;

/** How long each kind of record is kept, in hours after the agent finished (or the record was made); 0 keeps it. */
export interface RetentionSettings {
  eventHours: number;
  transcriptHours: number;
  federationHours: number;
  workspaceHours: number;
}

/** What one run removed, by kind. */
export interface PrunedRecords {
  events: number;
  transitions: number;
  messages: number;
  toolCalls: number;
  federationCommands: number;
  federationEvents: number;
  nonces: number;
  /** Result bundles removed with their workspaces (absent in runs before bundles). */
  resultBundles?: number;
}

export interface RetentionReport {
  records: PrunedRecords;
  /** Workspaces removed per host; hosts that did not answer are listed apart. */
  workspaces: Record<string, number>;
  unreachableHosts: string[];
}
