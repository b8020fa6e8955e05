import type { AgentContext } from '../../shared/agent-schemas';

/** What a follow-up takes over from the finished agent it continues. */
export interface FinishedAgent {
  agentId: string;
  taskId: string;
  state: string;
  context: AgentContext;
  result: { summary: string | null; commitSha: string | null } | null;
}

const INSTRUCTIONS_MAX_CHARACTERS = 50_000;

/**
 * A follow-up's context: the parent's repository and branch, the operator's new instructions as its one work item,
 * and what the parent did (its work items, how it ended, its last report) in its instructions, so the model starts
 * from the previous conversation's outcome rather than from scratch.
 */
export function followUpContext(parent: FinishedAgent, instructions: string): AgentContext {
  const { context, result } = parent;
  const report = result?.summary?.trim() || 'It left no report.';
  const start = result?.commitSha
    ? `Its changes (commit ${result.commitSha}) are checked out in your workspace: continue from them.`
    : 'It changed nothing: you start from the branch as it is.';
  const text = [
    `You continue the work of an earlier agent (${parent.agentId}) on task ${parent.taskId}; it ended ${parent.state}.`,
    `Its work items were:\n${context.workItems.map((item) => `- ${item}`).join('\n')}`,
    `Its last report:\n${report}`,
    start,
    ...(context.instructions ? [`Its instructions were:\n${context.instructions}`] : []),
  ].join('\n\n');
  return { ...context, workItems: [instructions], instructions: text.slice(0, INSTRUCTIONS_MAX_CHARACTERS) };
}
