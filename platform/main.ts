import { ConfigError } from '../config/env';
import { StartupError } from './preflight';
import { TemporalUnreachableError } from '../temporal/connection';

/**
 * Runs a process entry point. Known startup failures print their one-line message and exit 1;
 * anything else prints its message (stack traces only with DEBUG_STACKS=1) and exits 1.
 */
export function runMain(name: string, main: () => Promise<void>): void {
  Promise.resolve()
    .then(main)
    .catch((error: unknown) => {
      const known =
        error instanceof ConfigError || error instanceof StartupError || error instanceof TemporalUnreachableError;
      const message = error instanceof Error ? error.message : String(error);
      for (const line of message.split('\n')) process.stderr.write(`${name}: ${line}\n`);
      if (!known && process.env.DEBUG_STACKS === '1' && error instanceof Error)
        process.stderr.write(`${error.stack ?? ''}\n`);
      process.exit(1);
    });
}
