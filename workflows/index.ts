// Every workflow the worker registers. Deterministic code only: see eslint.config.mjs for the rules.
export { agentRun } from './agent-run';
export { sandboxCheck } from './sandbox-check';
