import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../../config/env';
import { adminClient, createTestDatabase } from './databases';
import { ALL_SEARCH_ATTRIBUTES } from '../../shared/search-attributes';
import { freePort } from './ports';
import { devServerDynamicConfigArgs } from '../../temporal/dev-server-args';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

declare global {
  var testTemporalEnv: TestWorkflowEnvironment | undefined;
}

/**
 * One ephemeral Temporal dev server (the real binary, with our search attributes) and one migrated
 * PostgreSQL template database per test run, which every test instance copies; test files reach them
 * through TEST_* variables. TEST_DATABASE_URL is one copy, for tests that need a database and no instance.
 */
export default async function globalSetup(): Promise<void> {
  const temporalCli = process.env.TEMPORAL_CLI_PATH ?? path.join(ROOT, '.tools/bin/temporal');
  // One migrated template per run; each test instance gets a copy of it (tests/helpers/databases.ts).
  const prefix = `agent_orchestrator_test_${Date.now()}_${process.pid}`;
  const templateUrl = Object.assign(new URL(loadConfig().DATABASE_URL), { pathname: `/${prefix}_template` }).toString();
  const admin = adminClient(templateUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE "${prefix}_template"`);
  await admin.end();
  await run(path.join(ROOT, 'node_modules/.bin/prisma'), ['migrate', 'deploy'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: templateUrl, PRISMA_QUERY_ENGINE_LIBRARY: '/dev/null' },
  });
  process.env.TEST_TEMPLATE_DATABASE_URL = templateUrl;
  process.env.TEST_DATABASE_PREFIX = prefix;
  const testDatabaseUrl = await createTestDatabase();

  const uiPort = await freePort();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCli },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      ip: '127.0.0.1',
      // The browser test reads runs in the Web UI.
      ui: true,
      uiPort,
      // Its own log would fill the terminal with the chaos tests' expected errors.
      log: { format: 'pretty', level: 'never' },
      extraArgs: devServerDynamicConfigArgs(),
    },
  });
  globalThis.testTemporalEnv = env;

  // Bundle the workflows once for the whole run instead of once per test file.
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(ROOT, 'workflows'),
    logger: new DefaultLogger('WARN'),
  });
  const bundlePath = path.join(os.tmpdir(), `agent-orchestrator-workflows-${process.pid}.js`);
  await writeFile(bundlePath, bundle.code);
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.TEST_TEMPORAL_ADDRESS = env.address;
  process.env.TEST_TEMPORAL_UI_URL = `http://127.0.0.1:${uiPort}`;
  process.env.TEST_DATABASE_URL = testDatabaseUrl;
  process.env.TEST_TEMPORAL_CLI = temporalCli;
}
