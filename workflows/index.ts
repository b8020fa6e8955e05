// Every workflow the worker registers. Deterministic code only: see eslint.config.mjs for the rules.
export { agentRun } from './agent-run';
export { sandboxCheck } from './sandbox-check';
export { federatedSpawn } from './federated-spawn';
export { federationCommand } from './federation-command';
export { hubEventDelivery } from './hub-event-delivery';
export { hostAdmission } from './admission';
export { sessionCallbacks } from './session-callbacks';
export { retention } from './retention';
