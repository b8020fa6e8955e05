import { loadConfig } from '../config/env';
import { runMain } from '../platform/main';
import { preflight } from '../platform/preflight';

/** Checks Temporal, PostgreSQL and Docker before the start script launches the API and worker. */
runMain('preflight', async () => {
  await preflight(loadConfig());
});
