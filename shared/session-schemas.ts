import { z } from 'zod';
import { AGENT_TYPES } from './vocabulary';
import { AgentContextSchema, AgentOptionsSchema, SpawnAgentRequestSchema } from './agent-schemas';

/**
 * A gateway's task and how it becomes an agent's context (docs/sessions.md): the work items are the
 * task's (its title when it has none); the instructions are the title, description, acceptance
 * criteria and labels, then the context's own instructions; the priority word maps to admission's
 * 1-10 scale. Validation errors name the offending field (`task.branch: must be a git branch name`).
 */
export const TASK_PRIORITIES = { low: 3, medium: 5, high: 8, critical: 10 } as const;

export const SessionTaskSchema = z.strictObject({
  id: SpawnAgentRequestSchema.shape.taskId,
  title: z.string().min(1).max(500),
  description: z.string().max(50_000).optional(),
  repository: AgentContextSchema.shape.repository,
  branch: AgentContextSchema.shape.branch,
  workItems: AgentContextSchema.shape.workItems.default([]),
  acceptanceCriteria: z.array(z.string().min(1).max(2000)).max(50).default([]),
  labels: z.array(z.string().min(1).max(100)).max(50).default([]),
  priority: z.enum(Object.keys(TASK_PRIORITIES) as [keyof typeof TASK_PRIORITIES]).default('medium'),
});

export const SessionContextSchema = z.strictObject({
  agentType: z.enum(AGENT_TYPES).default('worker'),
  /** Added after the task's own text. */
  instructions: z.string().max(50_000).optional(),
  skills: AgentContextSchema.shape.skills,
  options: AgentOptionsSchema.default(AgentOptionsSchema.parse({})),
  /** Run the agent on a peer instance through this connection (its hub side). */
  connectionId: z.uuid().optional(),
});

export const SpawnSessionRequestSchema = z.strictObject({
  task: SessionTaskSchema,
  context: SessionContextSchema.default(SessionContextSchema.parse({})),
  /** Where every lifecycle event is POSTed (obeys the instance's outbound address policy). */
  callback_url: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional(),
  /** The audience of the callback tokens; default: the callback URL's origin. */
  callback_audience: z.string().min(1).max(500).optional(),
});

export type SessionTask = z.infer<typeof SessionTaskSchema>;
export type SessionContext = z.infer<typeof SessionContextSchema>;
export type SpawnSessionRequest = z.infer<typeof SpawnSessionRequestSchema>;

/** The agent's context (repository, branch, work items, instructions) a task becomes. */
export function agentContextFromTask(task: SessionTask, context: SessionContext): z.infer<typeof AgentContextSchema> {
  const instructions = [
    `Task ${task.id}: ${task.title}`,
    task.description ?? '',
    task.acceptanceCriteria.length > 0
      ? ['Acceptance criteria:', ...task.acceptanceCriteria.map((criterion) => `- ${criterion}`)].join('\n')
      : '',
    task.labels.length > 0 ? `Labels: ${task.labels.join(', ')}` : '',
    context.instructions ?? '',
  ].filter(Boolean);
  return {
    repository: task.repository,
    branch: task.branch,
    workItems: task.workItems.length > 0 ? task.workItems : [task.title],
    instructions: instructions.join('\n\n').slice(0, 50_000),
    ...(context.skills ? { skills: context.skills } : {}),
  };
}
