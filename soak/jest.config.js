/** `npm run soak`: the soak runs in the test suite's environment (see soak.soak.ts). */
const base = require('../jest.config.js');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  rootDir: '..',
  roots: ['<rootDir>/soak'],
  testMatch: ['**/*.soak.ts'],
  testTimeout: 6 * 3_600_000,
  maxWorkers: 1,
  verbose: false,
};
