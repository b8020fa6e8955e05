import { loadConfig } from '../config/env';
import { runMain } from '../platform/main';

/**
 * Validates the environment with the app's own schema and prints the resolved settings as shell
 * assignments, so the shell scripts use exactly the defaults the API and worker use.
 */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

runMain('config', () => {
  // The API key stays out of the shell: only the Node processes read it from their environment.
  const { ANTHROPIC_API_KEY: _secret, INSTANCE_PRIVATE_KEY: _key, ...settings } = loadConfig();
  const lines = (Object.entries(settings) as Array<[string, unknown]>)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `export ${key}=${shellQuote(String(value))}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return Promise.resolve();
});
