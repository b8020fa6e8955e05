// Every workflow the worker registers. Deterministic code only: see eslint.config.mjs for the rules.
export { agentRun } from './agent-run/workflow';
export { sandboxCheck } from './sandbox-check/workflow';
export { federatedSpawn } from './federated-spawn/workflow';
export { federationCommand } from './federation-command/workflow';
export { hubEventDelivery } from './hub-event-delivery/workflow';
export { hostAdmission } from './admission/workflow';
export { sessionCallbacks } from './session-callbacks/workflow';
export { retention } from './retention/workflow';
