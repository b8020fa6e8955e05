import { builtinModules } from 'node:module';
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', 'data/', 'coverage/', 'prisma/generated/'] },
  eslint.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
    },
  },
  {
    // Plain JavaScript (config files, the lockfile tool) is not part of the TypeScript project.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        console: 'readonly',
        process: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Workflow code is replayed and must be deterministic: no Node built-ins, no I/O, and activities
    // are reached only through proxyActivities (type imports only).
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node built-ins.' })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'Workflows import activity types only; call them through proxyActivities.',
            },
            {
              group: [
                '**/api/*',
                '**/platform/*',
                '**/prisma/*',
                'dockerode',
                'pg',
                '@prisma/*',
                '@anthropic-ai/*',
                'express',
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
              ],
              message: 'Workflow code must not do I/O.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['process', 'require', 'fetch', 'Buffer', '__dirname', '__filename', 'setImmediate'].map((name) => ({
          name,
          message: 'Not available or not deterministic in workflow code.',
        })),
      ],
    },
  },
  {
    // Outside workflows/, a workflow is reached through its contract (types and plain data), never its code.
    files: [
      'api/**/*.ts',
      'domain/**/*.ts',
      'activities/**/*.ts',
      'client/**/*.ts',
      'cli/**/*.ts',
      'federation/**/*.ts',
    ],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)workflows(/(?![\\w-]+/contract$).*)?$',
              message: "Import a workflow's contract, never its code.",
            },
          ],
        },
      ],
    },
  },
  {
    // Dependencies point down: the domain modules and the federation protocol never import the HTTP layer.
    files: ['domain/**/*.ts', 'federation/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/api', '**/api/*'],
              message: 'Domain and protocol code must not import api/; api/ maps HTTP to them.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['tests/**/*.ts', 'bench/**/*.ts', 'soak/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
