// Every workflow the worker registers. Deterministic code only: see eslint.config.mjs for the rules.
export { sandboxCheck } from './sandbox-check';
