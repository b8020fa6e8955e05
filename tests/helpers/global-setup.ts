import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { Client } from 'pg';
import { loadConfig, postgresConnection } from '../../config/env';
import { ALL_SEARCH_ATTRIBUTES } from '../../shared/search-attributes';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

declare global {
  var testTemporalEnv: TestWorkflowEnvironment | undefined;
}

/**
 * One ephemeral Temporal dev server (the real binary, with our search attributes) and one fresh,
 * migrated PostgreSQL database per test run; test files reach both through TEST_* variables.
 */
export default async function globalSetup(): Promise<void> {
  const temporalCli = process.env.TEMPORAL_CLI_PATH ?? path.join(ROOT, '.tools/bin/temporal');
  const baseDatabaseUrl = loadConfig().DATABASE_URL;
  // Two databases: the second belongs to the peer instance of the federation tests.
  const databases = ['a', 'b'].map((suffix) => `agent_orchestrator_test_${Date.now()}_${process.pid}_${suffix}`);
  const [testDatabaseUrl, peerDatabaseUrl] = databases.map((database) => Object.assign(new URL(baseDatabaseUrl), { pathname: `/${database}` }).toString());

  const admin = new Client({ ...postgresConnection(baseDatabaseUrl), database: 'postgres' });
  await admin.connect();
  for (const database of databases) await admin.query(`CREATE DATABASE "${database}"`);
  await admin.end();
  await Promise.all(
    [testDatabaseUrl, peerDatabaseUrl].map((url) =>
      run(path.join(ROOT, 'node_modules/.bin/prisma'), ['migrate', 'deploy'], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: url, PRISMA_QUERY_ENGINE_LIBRARY: '/dev/null' },
      }),
    ),
  );

  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCli },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      ip: '127.0.0.1',
      extraArgs: ['--log-level', 'error'],
    },
  });
  globalThis.testTemporalEnv = env;

  // Bundle the workflows once for the whole run instead of once per test file.
  const bundle = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows'), logger: new DefaultLogger('WARN') });
  const bundlePath = path.join(os.tmpdir(), `agent-orchestrator-workflows-${process.pid}.js`);
  await writeFile(bundlePath, bundle.code);
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.TEST_TEMPORAL_ADDRESS = env.address;
  process.env.TEST_DATABASE_URL = testDatabaseUrl;
  process.env.TEST_PEER_DATABASE_URL = peerDatabaseUrl;
  process.env.TEST_TEMPORAL_CLI = temporalCli;
}
