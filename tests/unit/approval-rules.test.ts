import { AgentOptionsSchema } from '../../shared/agent-schemas';
import { approvalRuleFor, approvalSubject } from '../../sandbox-runtime/approval-rules';
import { BASH_TOOL, EDITOR_TOOL } from '../../sandbox-runtime/agent-tools';

/** Which tool calls wait for an operator (options.approvals): the first matching rule, by tool and pattern. */
describe('approval rules', () => {
  const { approvals } = AgentOptionsSchema.parse({
    approvals: [
      { tool: 'bash', match: 'git push|curl|rm -rf' },
      { tool: 'editor', match: '^(create|str_replace|insert) ', timeoutSeconds: 600, onTimeout: 'approve' },
    ],
  });

  it('gates the bash commands and editor writes its patterns name, and nothing else', () => {
    expect(approvalRuleFor(approvals, BASH_TOOL, { command: 'git push origin main' })).toBe(0);
    expect(approvalRuleFor(approvals, BASH_TOOL, { command: 'cd /w && rm -rf build' })).toBe(0);
    expect(approvalRuleFor(approvals, BASH_TOOL, { command: 'git status' })).toBeNull();
    expect(approvalRuleFor(approvals, EDITOR_TOOL, { command: 'create', path: 'a.ts', file_text: 'git push' })).toBe(1);
    expect(approvalRuleFor(approvals, EDITOR_TOOL, { command: 'view', path: 'a.ts' })).toBeNull();
    expect(approvalRuleFor(approvals, 'search_files', { pattern: 'git push' })).toBeNull();
  });

  it('a rule without a pattern gates every call of its tool; `*` gates every tool', () => {
    const every = AgentOptionsSchema.parse({ approvals: [{ tool: 'run_tests' }, { tool: '*', match: 'secret' }] });
    expect(approvalRuleFor(every.approvals, 'run_tests', {})).toBe(0);
    expect(approvalRuleFor(every.approvals, 'search_files', { pattern: 'secret' })).toBe(1);
    expect(approvalRuleFor(every.approvals, BASH_TOOL, { command: 'ls' })).toBeNull();
    expect(approvalRuleFor(undefined, BASH_TOOL, { command: 'git push' })).toBeNull();
  });

  it("tests a bounded subject: the command, the editor's command and path, other input as JSON", () => {
    expect(approvalSubject(BASH_TOOL, { command: 'ls' })).toBe('ls');
    expect(approvalSubject(BASH_TOOL, { restart: true })).toBe('restart');
    expect(approvalSubject(EDITOR_TOOL, { command: 'create', path: 'x', file_text: 'y' })).toBe('create x');
    expect(approvalSubject('search_files', { pattern: 'p' })).toBe('{"pattern":"p"}');
    expect(approvalSubject(BASH_TOOL, { command: 'x'.repeat(50_000) })).toHaveLength(10_000);
  });

  it('refuses a rule that could not run: a bad pattern, an unknown tool, a bad timeout', () => {
    const invalid = [
      [{ tool: 'bash', match: '(' }],
      [{ tool: 'shell' }],
      [{ tool: 'bash', timeoutSeconds: 0 }],
      [{ tool: 'bash', onTimeout: 'ask' }],
      [{ tool: 'bash', extra: true }],
      Array.from({ length: 21 }, () => ({ tool: 'bash' })),
    ];
    for (const rules of invalid) expect(AgentOptionsSchema.safeParse({ approvals: rules }).success).toBe(false);
    expect(AgentOptionsSchema.parse({ approvals: [{ tool: 'bash' }] }).approvals).toEqual([
      { tool: 'bash', onTimeout: 'deny' },
    ]);
  });
});
