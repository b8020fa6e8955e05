import { ConfigError, loadConfig, postgresConnection, redactUrl } from '../../config/env';

describe('loadConfig', () => {
  it('works with no configuration at all', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/agent_orchestrator',
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      TEMPORAL_NAMESPACE: 'default',
      DOCKER_HOST: 'unix:///var/run/docker.sock',
      API_PORT: 3000,
    });
    expect(config.ANTHROPIC_API_KEY).toBeUndefined();
    expect(config.DATA_DIR).toMatch(/^\//); // resolved to an absolute path
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ API_PORT: '', DATABASE_URL: '' }).API_PORT).toBe(3000);
  });

  it.each([
    ['DATABASE_URL', 'not-a-url', /DATABASE_URL must be a postgresql:\/\/ URL/],
    ['DATABASE_URL', 'mysql://root@127.0.0.1/db', /DATABASE_URL must be a postgresql:\/\/ URL/],
    ['TEMPORAL_ADDRESS', 'http://127.0.0.1:7233', /TEMPORAL_ADDRESS must be host:port/],
    ['DOCKER_HOST', '/var/run/docker.sock', /DOCKER_HOST must be unix:\/\/\/path/],
    ['API_PORT', '70000', /API_PORT/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL/],
  ])('rejects a malformed %s with one line naming it', (name, value, message) => {
    let caught: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).not.toContain('\n');
  });

  it('names every offending variable at once', () => {
    expect(() => loadConfig({ DATABASE_URL: 'x', API_PORT: 'y' })).toThrow(/DATABASE_URL.*; API_PORT/);
  });
});

describe('postgresConnection', () => {
  it('turns a URL into the settings node-postgres needs', () => {
    expect(postgresConnection('postgresql://app:s%40cret@db.example:6543/agents')).toEqual({
      host: 'db.example',
      port: 6543,
      user: 'app',
      password: 's@cret',
      database: 'agents',
    });
    expect(postgresConnection('postgres://127.0.0.1/agents')).toEqual({
      host: '127.0.0.1',
      port: 5432,
      user: 'postgres',
      database: 'agents',
    });
  });

  it('refuses a URL without a database name', () => {
    expect(() => postgresConnection('postgresql://127.0.0.1:5432/')).toThrow(ConfigError);
  });
});

describe('redactUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactUrl('postgresql://app:secret@db:5432/agents')).toBe('postgresql://app:***@db:5432/agents');
    expect(redactUrl('::::')).toBe('<unparseable URL>');
  });
});
