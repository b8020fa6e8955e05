import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { configSchema, loadConfig } from '../../config/env';
import { DEV_SERVER_DYNAMIC_CONFIG, searchAttributeNamesAndTypes } from '../../temporal/dev-server-args';

const ROOT = path.resolve(__dirname, '../..');

interface ComposeService {
  image?: string;
  build?: string | { context: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
}

const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const { services } = compose;

/** Resolves `${VAR:-default}` the way compose does with VAR unset. */
function interpolate(environment: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(
    Object.entries(environment).map(([key, value]) => [key, value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]),
  );
}

interface PublishedPort {
  hostAddress: string;
  hostPort: number;
}

/** Container port → where the host publishes it; compose's default host address is every interface. */
function publishedPorts(service: ComposeService): Map<number, PublishedPort> {
  return new Map(
    (service.ports ?? []).map((mapping) => {
      const parts = mapping.split(':');
      const [hostAddress, hostPort, containerPort] = parts.length === 3 ? parts : ['0.0.0.0', ...parts];
      return [Number(containerPort), { hostAddress: hostAddress!, hostPort: Number(hostPort) }];
    }),
  );
}

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
/** The Dockerfile's last stage: the image compose runs as the API and the worker. */
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

describe('docker-compose.yml', () => {
  it('defines the whole system', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['postgres', 'temporal', 'temporal-ui', 'api', 'worker', 'migrate', 'sandbox-image']),
    );
    expect(existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
    expect(services.api!.build).toBe('.');
    expect(services.worker!.build).toBe('.');
  });

  it.each(['api', 'worker', 'migrate'])('gives %s only settings the config schema declares, and valid ones', (name) => {
    const environment = interpolate(services[name]!.environment);
    const declared = Object.keys(configSchema.shape);
    expect(Object.keys(environment).filter((key) => !declared.includes(key))).toEqual([]);
    expect(() => loadConfig(environment)).not.toThrow();
  });

  it('points the app at the compose services it depends on', () => {
    const config = loadConfig(interpolate(services.api!.environment));
    const database = new URL(config.DATABASE_URL);
    const postgresEnv = services.postgres!.environment!;
    expect(database.hostname).toBe('postgres');
    expect(database.username).toBe(postgresEnv.POSTGRES_USER);
    expect(database.password).toBe(postgresEnv.POSTGRES_PASSWORD);
    expect(config.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(publishedPorts(services.temporal!).get(7233)?.hostPort).toBe(7233);
    expect(services['temporal-ui']!.environment!.TEMPORAL_ADDRESS).toBe(config.TEMPORAL_ADDRESS);
    expect(publishedPorts(services['temporal-ui']!).get(8080)?.hostPort).toBe(
      Number(new URL(config.TEMPORAL_UI_URL).port),
    );
  });

  it('publishes the unauthenticated Temporal frontend and Web UI on loopback only', () => {
    expect(publishedPorts(services.temporal!).get(7233)?.hostAddress).toBe('127.0.0.1');
    expect(publishedPorts(services['temporal-ui']!).get(8080)?.hostAddress).toBe('127.0.0.1');
    for (const [name, service] of Object.entries(services)) {
      if (name === 'api') continue;
      for (const published of publishedPorts(service).values())
        expect([name, published.hostAddress]).toEqual([name, '127.0.0.1']);
    }
  });

  it('publishes the API on the port it listens on, on all interfaces (peers reach it)', () => {
    const config = loadConfig(interpolate(services.api!.environment));
    expect(config.API_HOST).toBe('0.0.0.0');
    expect(publishedPorts(services.api!).get(config.API_PORT)?.hostPort).toBe(config.API_PORT);
  });

  it('names the worker host the same across container recreation', () => {
    // Without it the host name, which is the container's id, would name the host's queue and slots.
    expect(services.worker!.environment?.HOST_ID).toMatch(/^\$\{HOST_ID:-[a-z0-9-]+\}$/);
    expect(loadConfig(interpolate(services.worker!.environment)).HOST_ID).toBe('compose-worker');
  });

  it('gives the Docker socket to the worker only', () => {
    const socketHolders = Object.entries(services)
      .filter(([, service]) => (service.volumes ?? []).some((volume) => volume.includes('docker.sock')))
      .map(([name]) => name);
    expect(socketHolders).toEqual(['worker']);
    expect(Object.keys(services.api!.environment ?? {})).not.toContain('DOCKER_HOST');
  });

  it('builds an image with what the worker needs to clone repositories', () => {
    const installLine = /apt-get install ([^&]*)/.exec(runtimeStage.replace(/\\\n/g, ' '))?.[1] ?? '';
    const installed = installLine.split(/\s+/);
    expect(installed).toEqual(expect.arrayContaining(['git', 'ca-certificates', 'openssh-client']));
  });

  it('lets the worker drive the Docker engine and share workspaces with it at the same path', () => {
    const config = loadConfig(interpolate(services.worker!.environment));
    expect(config.DOCKER_HOST).toBe('unix:///var/run/docker.sock');
    expect(services.worker!.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
    expect(services.worker!.volumes).toContain(`${config.DATA_DIR}:${config.DATA_DIR}`);
    expect(config.SANDBOX_IMAGE).toBe(services['sandbox-image']!.image);
  });

  it('gives the API and the worker one federation identity (both sign for the instance)', () => {
    for (const name of ['api', 'worker']) {
      const config = loadConfig(interpolate(services[name]!.environment));
      expect(services[name]!.volumes).toContain(`federation-keys:${config.DATA_DIR}/federation`);
    }
  });

  it('keeps the Anthropic key on the worker only', () => {
    expect(Object.keys(services.worker!.environment!)).toContain('ANTHROPIC_API_KEY');
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'worker') expect(Object.keys(service.environment ?? {})).not.toContain('ANTHROPIC_API_KEY');
    }
  });

  it('registers every custom search attribute', () => {
    const command = (services['temporal-setup']!.command ?? []).join(' ');
    for (const [name, type] of searchAttributeNamesAndTypes())
      expect(command).toContain(`--name ${name} --type ${type}`);
  });

  it('migrates before the API and worker start', () => {
    for (const name of ['api', 'worker']) {
      expect(services[name]!.depends_on).toMatchObject({ migrate: { condition: 'service_completed_successfully' } });
    }
  });

  it('gives the Temporal server the dynamic configuration the dev server gets', () => {
    const temporal = services.temporal!;
    const file = temporal.environment!.DYNAMIC_CONFIG_FILE_PATH!;
    const mount = (temporal.volumes ?? []).find((volume) => volume.split(':')[1] === `/etc/temporal/${file}`);
    expect(mount).toBeDefined();
    const values = parse(readFileSync(path.join(ROOT, mount!.split(':')[0]!), 'utf8')) as Record<
      string,
      Array<{ value: unknown }>
    >;
    for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG))
      expect(String(values[key]?.[0]?.value)).toBe(value);
  });
});
