import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseAllowedNetworks } from '../platform/outbound-http';
import { parseModelPrices } from './model-prices';
import { ORCHESTRATOR_TASK_QUEUE } from '../shared/task-queues';
import { RELEASE } from './release';

/**
 * Every setting the API and the worker read from the environment. The defaults make a single local
 * instance work with no configuration at all; docker-compose.yml overrides them per service (a test
 * checks that it only sets keys declared here).
 */
const HostPort = z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233');

export const configSchema = z.object({
  DATABASE_URL: z
    .url({
      protocol: /^postgres(ql)?$/,
      error: 'must be a postgresql:// URL, e.g. postgresql://postgres@127.0.0.1:5432/agents',
    })
    .default('postgresql://postgres@127.0.0.1:5432/agent_orchestrator'),
  TEMPORAL_ADDRESS: HostPort.default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_UI_URL: z.url().default('http://127.0.0.1:8233'),
  /** The queue this instance's workflows run on; instances sharing a namespace need different ones. */
  TASK_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be 1-200 letters, digits, dots, dashes or underscores')
    .default(ORCHESTRATOR_TASK_QUEUE),
  DOCKER_HOST: z
    .string()
    .regex(/^(unix:\/\/\/.+|tcp:\/\/[^/]+:\d+)$/, 'must be unix:///path/to/docker.sock or tcp://host:port')
    .default('unix:///var/run/docker.sock'),
  SANDBOX_IMAGE: z.string().min(1).default('agent-sandbox:latest'),
  /**
   * runc (default) or runsc: gVisor, for untrusted code (Debian's runsc, registered as a Docker runtime by the start
   * script).
   */
  SANDBOX_RUNTIME: z.enum(['runc', 'runsc']).default('runc'),
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: z.url().optional(),
  /** Prices (USD per million tokens) and context windows per model, JSON merged over config/model-prices.ts. */
  MODEL_PRICES: z
    .string()
    .default('')
    .superRefine((value, context) => {
      try {
        parseModelPrices(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
      }
    }),
  /** Names this worker host; its sandbox activities are routed to the queue sandbox-host-<HOST_ID>. */
  HOST_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'must be 1-100 letters, digits, dots, dashes or underscores')
    .default(
      os
        .hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 100) || 'local',
    ),
  /** The largest workspace disk quota an agent may ask for (options.resources.diskMb, default 1024). */
  WORKSPACE_MAX_MB: z.coerce.number().int().min(16).max(65536).default(8192),
  /**
   * How quotas are enforced: loop (an ext4 image per workspace; needs root and loop devices), watchdog (measured while
   * tools run), or auto.
   */
  WORKSPACE_QUOTA: z.enum(['auto', 'loop', 'watchdog']).default('auto'),
  /** Hours a finished agent's workspace is kept for inspection before the reconciler removes it; 0 keeps them. */
  WORKSPACE_RETENTION_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 365)
    .default(168),
  /** Hours (fractions allowed) a finished agent's event log and state transitions are kept; 0 keeps them. */
  EVENT_RETENTION_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 3650)
    .default(720),
  /** Hours a finished agent's transcript (messages to and from the model) and tool calls are kept; 0 keeps them. */
  TRANSCRIPT_RETENTION_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 3650)
    .default(720),
  /** Hours federation commands and events (sent, received and refused) are kept; 0 keeps them. */
  FEDERATION_RETENTION_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 3650)
    .default(720),
  /** Minutes between two runs of the retention schedule (a Temporal Schedule per instance). */
  RETENTION_INTERVAL_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(60),
  /** Agent sandboxes one worker host runs at once; further spawns wait in state queued. */
  MAX_CONCURRENT_AGENTS: z.coerce.number().int().min(1).max(1000).default(4),
  /**
   * Sandboxes this host keeps created and started ahead of demand (0: none); they count against MAX_CONCURRENT_AGENTS.
   */
  WARM_POOL_SIZE: z.coerce.number().int().min(0).max(1000).default(0),
  /**
   * Whether this host keeps a mirror of each repository agents clone (under DATA_DIR/repository-cache), so a spawn
   * fetches what changed and copies the checkout instead of cloning the whole repository.
   */
  REPOSITORY_CACHE: z.enum(['on', 'off']).default('on'),
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  /**
   * How peers reach this instance; its authority is what incoming signatures must cover. Default:
   * http://API_HOST:API_PORT.
   */
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  INSTANCE_NAME: z
    .string()
    .min(1)
    .max(100)
    .default(os.hostname() || 'agent-orchestrator'),
  /** The signing key as PKCS#8 PEM; without it a key is created under DATA_DIR/federation. Never logged. */
  INSTANCE_PRIVATE_KEY: z.string().min(1).optional(),
  /** Commands one connection may send per minute. */
  FEDERATION_RATE_LIMIT: z.coerce.number().int().min(1).max(100_000).default(120),
  /**
   * Non-public networks this instance may call (peers, callbacks): loopback, private, link-local,
   * metadata and/or CIDRs, comma-separated. Default: public addresses only.
   */
  OUTBOUND_ALLOWED_NETWORKS: z
    .string()
    .default('')
    .superRefine((value, context) => {
      try {
        parseAllowedNetworks(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
      }
    }),
  /** URL schemes an agent's repository may use (https, http, ssh, git), comma-separated. */
  REPOSITORY_SCHEMES: z
    .string()
    .default('https')
    .refine(
      (value) =>
        value.split(',').every((scheme) => ['https', 'http', 'ssh', 'git'].includes(scheme.trim().toLowerCase())),
      'must list https, http, ssh or git',
    ),
  /**
   * Hosts repositories may come from (example.com, *.example.com), comma-separated; empty: any host the outbound policy
   * allows.
   */
  REPOSITORY_HOSTS: z.string().default(''),
  /** Absolute folders whose repositories may be cloned by local path, comma-separated; empty: no local paths. */
  REPOSITORY_LOCAL_ROOTS: z
    .string()
    .default('')
    .refine(
      (value) => value.split(',').every((root) => root.trim() === '' || path.isAbsolute(root.trim())),
      'must list absolute folders',
    ),
  /**
   * The operator's credentials for pushing results (options.delivery), read by git on the worker only: a
   * git-credential-store file (`https://user:token@host`, one per line) for https remotes, and a private key and a
   * known_hosts file for ssh remotes. Their contents are never logged, stored or given to a sandbox.
   */
  GIT_CREDENTIALS_FILE: z.string().min(1).optional(),
  GIT_SSH_KEY_FILE: z.string().min(1).optional(),
  GIT_SSH_KNOWN_HOSTS_FILE: z.string().min(1).optional(),
  /** Seconds one request to a peer may take (identity fetch, handshake, command, event). */
  FEDERATION_PEER_TIMEOUT: z.coerce.number().int().min(1).max(300).default(30),
  /** Seconds without news of an agent running on a peer after which the hub asks the peer (agent.status). */
  FEDERATION_POLL_INTERVAL: z.coerce.number().int().min(1).max(3600).default(30),
  DATA_DIR: z.string().min(1).default('data'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Where the worker serves GET /metrics (its own metrics, then the Temporal SDK's). */
  WORKER_METRICS_ADDRESS: HostPort.default('127.0.0.1:9464'),
  /** Where the Temporal SDK's runtime exports its Prometheus metrics (the worker's /metrics includes them). */
  TEMPORAL_METRICS_ADDRESS: HostPort.default('127.0.0.1:9465'),
  /** The worker deployment this instance's workers belong to (default: the TASK_QUEUE). */
  WORKER_DEPLOYMENT_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be 1-200 letters, digits, dots, dashes or underscores')
    .optional(),
  /** The workers' version within it: agent runs stay on the version that started them (default: the release). */
  WORKER_BUILD_ID: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,100}$/, 'must be 1-100 letters, digits, dots, dashes, pluses or underscores')
    .default(RELEASE),
  /**
   * newer: a worker makes its version current when it is a later release than the current one; never: the operator
   * does.
   */
  WORKER_PROMOTE: z.enum(['newer', 'never']).default('newer'),
});

/** The resolved configuration: PUBLIC_URL always set. */
export type AppConfig = Omit<z.infer<typeof configSchema>, 'PUBLIC_URL'> & { PUBLIC_URL: string };

/** Thrown for a bad environment; its message is one line that names every offending variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  // An empty variable means "not set" (docker-compose and shells often export VAR= ).
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const data = parsed.data;
  return {
    ...data,
    DATA_DIR: path.resolve(data.DATA_DIR),
    PUBLIC_URL: (data.PUBLIC_URL ?? `http://${data.API_HOST}:${data.API_PORT}`).replace(/\/$/, ''),
  };
}

/** The connection settings node-postgres needs; Prisma's adapter wants an object, not a URL string. */
export interface PostgresConnection {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
}

export function postgresConnection(databaseUrl: string): PostgresConnection {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database)
    throw new ConfigError(`Invalid configuration: DATABASE_URL names no database (${redactUrl(databaseUrl)})`);
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || 'postgres',
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    database,
  };
}

/** A URL safe to print: the password is replaced. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '<unparseable URL>';
  }
}
