import { query } from '../../shared/temporal-definitions';

/**
 * The sandbox check: a small workflow that proves the whole chain works (API -> Temporal -> worker ->
 * PostgreSQL and a hardened container). Its definitions live here so the API never imports workflow code.
 */
export const SANDBOX_CHECK_WORKFLOW = 'sandboxCheck';

export type SandboxCheckState = 'pending' | 'running' | 'passed' | 'failed';

export interface SandboxCheckInput {
  checkId: string;
}

/**
 * What the sandbox reported about itself; every flag must be true for the check to pass. (A type alias, so it stays
 * assignable to JSON.)
 */
export type SandboxFindings = {
  uid: number;
  nonRoot: boolean;
  rootFilesystemReadOnly: boolean;
  workspaceWritable: boolean;
  tmpNoExec: boolean;
  noNetwork: boolean;
  noCapabilities: boolean;
  noNewPrivileges: boolean;
  toolsPresent: Record<string, boolean>;
};

export interface SandboxCheckResult {
  checkId: string;
  state: Extract<SandboxCheckState, 'passed' | 'failed'>;
  exitCode: number;
  findings: SandboxFindings | null;
  error?: string;
}

export interface SandboxCheckStatus {
  checkId: string;
  state: SandboxCheckState;
  step: string;
  result?: SandboxCheckResult;
}

export const sandboxCheckStatusQuery = query<SandboxCheckStatus>('status');

export function sandboxCheckWorkflowId(checkId: string): string {
  return `sandbox-check-${checkId}`;
}
