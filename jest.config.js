/** Unit tests (pure logic) and integration tests (real Temporal, PostgreSQL and Docker) in one run. */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
    ],
  },
  globalSetup: '<rootDir>/tests/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/tests/helpers/global-teardown.ts',
  setupFilesAfterEnv: ['<rootDir>/tests/helpers/file-teardown.ts'],
  testTimeout: 120_000,
  maxWorkers: 2,
  verbose: true,
};
