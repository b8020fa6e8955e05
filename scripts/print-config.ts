import { loadConfig } from '../config/env';
import { runMain } from '../platform/main';

/**
 * Validates the environment with the app's own schema and prints the resolved settings as shell
 * assignments, so the shell scripts use exactly the defaults the API and worker use.
 */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

runMain('config', async () => {
  const config = loadConfig();
  const lines = Object.entries(config)
    .filter(([key, value]) => value !== undefined && key !== 'ANTHROPIC_API_KEY')
    .map(([key, value]) => `export ${key}=${shellQuote(String(value))}`);
  process.stdout.write(`${lines.join('\n')}\n`);
});
