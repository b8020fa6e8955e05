/**
 * Every endpoint's schemas, loaded for their OpenAPI registration: the document lists what is
 * registered, whichever of these a router happens to import at run time (type-only imports vanish).
 */
import './agents';
import './federated-agents';
import './federation';
import './health';
import './sandbox-checks';
import './sessions';
