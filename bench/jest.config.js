/** `npm run bench`: the benchmark runs in the test suite's environment (see benchmark.bench.ts). */
const base = require('../jest.config.js');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  rootDir: '..',
  roots: ['<rootDir>/bench'],
  testMatch: ['**/*.bench.ts'],
  testTimeout: 3_600_000,
  maxWorkers: 1,
  verbose: false,
};
