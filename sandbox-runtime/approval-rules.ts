import type { ApprovalRule } from '../shared/agent-schemas';
import { BASH_TOOL, EDITOR_TOOL } from './agent-tools';

/** The longest subject a rule's pattern is tested against: a pattern's cost stays bounded whatever the model wrote. */
const SUBJECT_MAX_CHARACTERS = 10_000;

/**
 * What a rule's pattern is tested against: a bash command as written, an editor call's command and path
 * (`create src/a.ts`), another tool's input as JSON.
 */
export function approvalSubject(name: string, input: unknown): string {
  const fields = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  let subject: string;
  if (name === BASH_TOOL) subject = fields.restart === true ? 'restart' : text(fields.command);
  else if (name === EDITOR_TOOL) subject = `${text(fields.command)} ${text(fields.path)}`;
  else subject = JSON.stringify(input ?? null);
  return subject.slice(0, SUBJECT_MAX_CHARACTERS);
}

const ruleTool = (name: string): ApprovalRule['tool'] | null => {
  if (name === EDITOR_TOOL) return 'editor';
  if (name === BASH_TOOL || name === 'search_files' || name === 'run_tests') return name;
  return null;
};

/** The index of the first rule a tool call matches (it waits for an operator), or null (it runs at once). */
export function approvalRuleFor(
  rules: readonly ApprovalRule[] | undefined,
  name: string,
  input: unknown,
): number | null {
  if (!rules || rules.length === 0) return null;
  const tool = ruleTool(name);
  const subject = approvalSubject(name, input);
  const index = rules.findIndex(
    (rule) =>
      (rule.tool === '*' || rule.tool === tool) && (rule.match === undefined || new RegExp(rule.match).test(subject)),
  );
  return index === -1 ? null : index;
}
