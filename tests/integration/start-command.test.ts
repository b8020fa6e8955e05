import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { issueAdminToken } from '../../api/auth';
import { createDockerClient } from '../../platform/docker';
import { createPrismaClient } from '../../prisma/client';
import { waitUntil } from '../helpers/wait';
import { request } from '../helpers/http';
import { freePort } from '../helpers/ports';

const ROOT = path.resolve(__dirname, '../..');
const START = path.join(ROOT, 'scripts/start.sh');

interface StartRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

function baseEnv(dataDir: string): NodeJS.ProcessEnv {
  return { ...process.env, DATA_DIR: dataDir, DATABASE_URL: process.env.TEST_DATABASE_URL, LOG_LEVEL: 'warn' };
}

/** Runs the README's start command to completion (for the failure cases). */
function runStart(env: NodeJS.ProcessEnv): Promise<StartRun> {
  return new Promise((resolve) => {
    const child = spawn('bash', [START], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (exitCode) => resolve({ exitCode, stdout, stderr }));
  });
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}

/** A second run must reuse the CLI, the image and the installed packages. */
function expectNothingRebuilt(output: string): void {
  expect(output).not.toMatch(
    /building the Temporal CLI|building the sandbox image|bootstrapping|installing npm dependencies/,
  );
}

describe('the start command (scripts/start.sh)', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'start-command-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    [
      'a malformed database URL',
      () => ({ DATABASE_URL: 'not-a-url' }),
      /^config: Invalid configuration: DATABASE_URL must be a postgresql:\/\/ URL/,
    ],
    [
      'an unreachable Temporal server',
      () => ({ TEMPORAL_ADDRESS: 'temporal.invalid:7233' }),
      /^preflight: Temporal server at temporal\.invalid:7233 \(namespace default\) is unreachable \(.+\)$/,
    ],
    [
      'a missing Docker engine',
      async () => ({ DOCKER_HOST: `tcp://127.0.0.1:${await freePort()}` }),
      /^error: Docker engine at tcp:\/\/127\.0\.0\.1:\d+ is unreachable/,
    ],
  ])('ends with one clear line for %s', async (_name, overrides, expected) => {
    const run = await runStart({ ...baseEnv(dataDir), ...(await overrides()) });
    expect(run.exitCode).not.toBe(0);
    expect(lastLine(run.stderr)).toMatch(expected);
    expect(run.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
    expectNothingRebuilt(run.stderr + run.stdout);
  });

  it(
    'brings the system up, serves a sandbox check through its own worker, ' + 'and Ctrl-C stops what it started',
    async () => {
      const [apiPort, temporalPort, uiPort, workerMetricsPort, sdkMetricsPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const child = spawn('bash', [START], {
        cwd: ROOT,
        detached: true, // its own process group, so the test can send Ctrl-C the way a terminal does
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...baseEnv(dataDir),
          API_PORT: String(apiPort),
          TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
          TEMPORAL_UI_URL: `http://127.0.0.1:${uiPort}`,
          WORKER_METRICS_ADDRESS: `127.0.0.1:${workerMetricsPort}`,
          TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${sdkMetricsPort}`,
        },
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));

      try {
        const deadline = Date.now() + 90_000;
        while (!output.includes('Press Ctrl-C to stop.') && child.exitCode === null && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(output).toContain(`API:              http://127.0.0.1:${apiPort}`);
        expect(output).toContain(`Temporal Web UI:  http://127.0.0.1:${uiPort}`);
        expectNothingRebuilt(output);

        const apiUrl = `http://127.0.0.1:${apiPort}`;
        // Docker's part of readiness comes from the worker's reports, a moment after it starts.
        await waitUntil(async () => (await request(apiUrl, 'GET', '/health/ready')).status === 200, 30_000, 500);
        const ready = await request(apiUrl, 'GET', '/health/ready');
        expect(ready.status).toBe(200);
        expect(ready.body).toMatchObject({ status: 'ready' });

        const ui = await fetch(`http://127.0.0.1:${uiPort}/`);
        expect(ui.status).toBe(200);

        const prisma = createPrismaClient(process.env.TEST_DATABASE_URL ?? '');
        const admin = { authorization: `Bearer ${(await issueAdminToken(prisma)).token}` };
        await prisma.$disconnect();
        const started = await request(apiUrl, 'POST', '/diagnostics/sandbox-checks', {
          json: { checkId: 'start-command' },
          headers: admin,
        });
        expect(started.status).toBe(202);
        let state = 'pending';
        for (let i = 0; i < 150 && (state === 'pending' || state === 'running'); i++) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          state = (
            (await request(apiUrl, 'GET', '/diagnostics/sandbox-checks/start-command', { headers: admin })).body as {
              state: string;
            }
          ).state;
        }
        expect(state).toBe('passed');

        // Metrics: the API's own, and the worker's followed by the Temporal SDK's runtime metrics.
        expect(output).toContain(`http://127.0.0.1:${workerMetricsPort}/metrics`);
        const apiMetrics = await (await fetch(`${apiUrl}/metrics`)).text();
        expect(apiMetrics).toContain('orchestrator_agents');
        expect(apiMetrics).toContain(
          'orchestrator_http_request_duration_seconds_count' +
            '{method="POST",route="/diagnostics/sandbox-checks",status="202"}',
        );
        const workerMetrics = await (await fetch(`http://127.0.0.1:${workerMetricsPort}/metrics`)).text();
        expect(workerMetrics).toMatch(
          /orchestrator_activity_duration_seconds_count\{activity="[A-Za-z]+",outcome="completed"\}/,
        );
        expect(workerMetrics).toMatch(/^temporal_\w+/m);
      } finally {
        if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGINT');
      }
      expect(await exited).toBe(130);
      expect(output).toContain('stopping what this start started');

      // Everything it started is gone; the Docker engine it found running is not.
      await expect(fetch(`http://127.0.0.1:${apiPort}/health`)).rejects.toThrow();
      await expect(fetch(`http://127.0.0.1:${uiPort}/`)).rejects.toThrow();
      await expect(createDockerClient('unix:///var/run/docker.sock').ping()).resolves.toBeTruthy();
    },
  );
});
