import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

interface LintCase {
  name: string;
  /** An existing project file whose rules apply; its text is replaced by `code`. */
  file: string;
  code: string;
  /** The rule that must fire, or null when the code must pass. */
  rule: string | null;
}

const CASES: LintCase[] = [
  {
    name: 'a Node built-in in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'a bare Node built-in in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: "import os from 'os';\nexport const x = os;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'an activity implementation in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: "import { createActivities } from '../../activities';\nexport const x = createActivities;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'an I/O client in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: "import Docker from 'dockerode';\nexport const x = Docker;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'process.env in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: 'export const x = process.env.HOME;\n',
    rule: 'no-restricted-globals',
  },
  {
    name: 'a floating promise',
    file: 'platform/main.ts',
    code: 'async function f(): Promise<void> {}\nexport function g(): void {\n  f();\n}\n',
    rule: '@typescript-eslint/no-floating-promises',
  },
  {
    name: 'the API importing workflow code',
    file: 'api/app.ts',
    code: "import { sandboxCheck } from '../workflows';\nexport const x = sandboxCheck;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: "the API importing one workflow's code",
    file: 'api/app.ts',
    code: "import { agentRun } from '../workflows/agent-run/workflow';\nexport const x = agentRun;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'the API importing a workflow contract',
    file: 'api/app.ts',
    code:
      'import { AGENT_RUN_WORKFLOW } from ' +
      "'../workflows/agent-run/contract';\nexport const x = " +
      'AGENT_RUN_WORKFLOW;\n',
    rule: null,
  },
  {
    name: 'federation code importing the API',
    file: 'federation/client.ts',
    code: "import { ApiError } from '../api/errors';\nexport const x = ApiError;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'a domain module importing the API',
    file: 'domain/agents/agent-service.ts',
    code: "import { toView } from '../../api/routes/agents';\nexport const x = toView;\n",
    rule: '@typescript-eslint/no-restricted-imports',
  },
  {
    name: 'activity types in workflow code',
    file: 'workflows/sandbox-check/workflow.ts',
    code: "import type { Activities } from '../../activities';\nexport type X = Activities;\n",
    rule: null,
  },
];

// ESLint loads its flat config with a dynamic import, which jest's VM refuses, so every case is
// linted in one child process with the project's real configuration.
const LINT_SCRIPT = `
const { ESLint } = require('eslint');
const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
(async () => {
  const eslint = new ESLint();
  const out = [];
  for (const c of cases) {
    const [result] = await eslint.lintText(c.code, { filePath: c.file });
    out.push(result.messages.map((m) => m.ruleId || m.message));
  }
  process.stdout.write(JSON.stringify(out));
})();
`;

const results: string[][] = (() => {
  const run = spawnSync(process.execPath, ['-e', LINT_SCRIPT], {
    cwd: ROOT,
    input: JSON.stringify(CASES.map((c) => ({ ...c, file: path.join(ROOT, c.file) }))),
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`eslint failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as string[][];
})();

/** The determinism and layering rules must stay switched on: each case would break a running system. */
describe('ESLint rules for workflow code and the layers', () => {
  it.each(CASES.map((c, index) => ({ ...c, index })))('$name: $rule', ({ index, rule }) => {
    if (rule === null) expect(results[index]).toEqual([]);
    else expect(results[index]).toContain(rule);
  });
});
