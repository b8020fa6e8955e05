import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { issueApiToken } from '../../api/auth';
import { byTurn, byWorkItem, FakeAnthropic, reply, EDITOR } from '../../scripts/scripted-model-server';
import { agentStatusQuery } from '../../workflows/agent-run/contract';
import {
  AGENT_ID,
  AGENT_STATE,
  AGENT_TYPE,
  PRIORITY,
  REMOTE_INSTANCE,
  REPOSITORY,
  TASK_ID,
  WORKSPACE,
} from '../../shared/search-attributes';
import { bearer, linkInstances, spawnedAgentId, spawnThroughHub, type Link } from '../helpers/federation';
import { createRepository } from '../helpers/git-repo';
import { stepSummaries, workflowWords } from '../helpers/history-words';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';

/**
 * The Temporal Web UI, in Debian's Chromium driven by playwright-core, tells each agent run's story:
 * a finished federated run and a killed local run are found by their search attributes, and a run's
 * page shows its summary and the summaries of its steps. Screenshots land in data/test-artifacts/web-ui.
 */
const ARTIFACTS = path.resolve(__dirname, '../../data/test-artifacts/web-ui');
const model = new FakeAnthropic(
  byWorkItem({
    'write hello': byTurn([
      reply.toolUse({
        name: EDITOR,
        input: { command: 'create', path: 'hello.txt', file_text: 'hello from the spoke\n' },
      }),
      reply.toolUse({ name: 'bash', input: { command: 'cat hello.txt' } }),
      reply.text('Wrote hello.txt.'),
    ]),
    'test slowly': () => reply.toolUse({ name: 'run_tests', input: { command: 'sleep 300' } }),
  }),
);

describe('the Temporal Web UI shows every agent run in words', () => {
  let hub: TestInstance;
  let spoke: TestInstance;
  let link: Link;
  let repository: string;
  let workspace: string;
  let token: string;
  let browser: Browser;
  const uiUrl = process.env.TEST_TEMPORAL_UI_URL ?? '';

  beforeAll(async () => {
    await model.start();
    hub = await startTestInstance({
      ANTHROPIC_API_KEY: 'hub-model-key',
      ANTHROPIC_BASE_URL: model.url,
      FEDERATION_POLL_INTERVAL: '300',
    });
    spoke = await startTestInstance({ ANTHROPIC_API_KEY: 'spoke-model-key', ANTHROPIC_BASE_URL: model.url });
    link = await linkInstances(hub, spoke);
    workspace = `ui-${Date.now()}`;
    ({ token } = await issueApiToken(hub.prisma, workspace));
    repository = await createRepository({ 'README.md': '# Web UI\n' });
    await mkdir(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });
  afterAll(async () => {
    await browser.close();
    await hub.stop();
    await spoke.stop();
    await model.stop();
  });

  async function openPage(url: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    return page;
  }

  /** The Web UI's workflow list filtered by a visibility query, as a user types it. */
  const listUrl = (query: string): string =>
    `${uiUrl}/namespaces/${hub.config.TEMPORAL_NAMESPACE}/workflows?query=${encodeURIComponent(query)}`;

  it(
    'finds a finished federated run and a killed local run by their search ' + 'attributes and shows their steps',
    async () => {
      // A federated run that finishes on the spoke.
      const federated = await spawnThroughHub(hub, link, {
        taskId: 'ui-federated',
        repository,
        workItem: 'write hello',
      });
      expect(federated.status).toBe(202);
      const federatedId = spawnedAgentId(federated);
      await waitUntil(
        async () => (await hub.prisma.agent.findUniqueOrThrow({ where: { id: federatedId } })).state === 'completed',
        60_000,
      );

      // A local run, killed while its tool runs.
      const spawned = await request(hub.baseUrl, 'POST', '/agents/spawn', {
        headers: bearer(token),
        json: {
          taskId: 'ui-killed',
          agentType: 'tester',
          priority: 8,
          context: { repository, branch: 'main', workItems: ['test slowly'] },
          options: { maxRetries: 1 },
        },
      });
      expect(spawned.status).toBe(202);
      const killedId = (spawned.body as { agentId: string }).agentId;
      const handle = hub.temporal.workflow.getHandle(killedId);
      await waitUntil(async () => (await handle.query(agentStatusQuery)).lastTool === 'run_tests', 60_000);
      expect((await request(hub.baseUrl, 'POST', `/agents/${killedId}/kill`, { headers: bearer(token) })).status).toBe(
        202,
      );
      await handle.result();

      // What the Web UI reads: search attributes, summaries and details.
      const killedAttributes = (await handle.describe()).typedSearchAttributes;
      expect(
        [AGENT_ID, AGENT_STATE, AGENT_TYPE, TASK_ID, WORKSPACE, PRIORITY, REMOTE_INSTANCE, REPOSITORY].map((key) =>
          killedAttributes.get(key),
        ),
      ).toEqual([killedId, 'killed', 'tester', 'ui-killed', workspace, 8, 'local', repository]);
      const peerName = spoke.config.INSTANCE_NAME;
      expect(
        (await hub.temporal.workflow.getHandle(federatedId).describe()).typedSearchAttributes.get(REMOTE_INSTANCE),
      ).toBe(peerName);
      const words = await workflowWords(hub.temporal, killedId);
      expect(words.summary).toBe(`tester agent · task ui-killed · ${repository}@main`);
      expect(words.details).toContain(`**Requested by** workspace ${workspace}`);
      expect(await stepSummaries(hub.temporal, killedId)).toEqual(
        expect.arrayContaining([
          // Admitted by the API before the run started: the first step launches on the granted host.
          `launch sandbox: clone ${repository}@main on host ${hub.config.HOST_ID}`,
          'turn 1: model call',
          'turn 1: run_tests `sleep 300`',
          `teardown ${killedId}`,
          'record state: killed',
        ]),
      );
      expect(await stepSummaries(hub.temporal, federatedId)).toEqual(
        expect.arrayContaining([`send agent.spawn to ${peerName}`, 'record state: running']),
      );

      // The list, filtered as a user would: the killed run is visibly killed, the federated one names its peer.
      const killedList = await openPage(listUrl(`AgentState = "killed" AND TaskId = "ui-killed"`));
      await killedList.getByText(killedId).first().waitFor({ timeout: 30_000 });
      await killedList.screenshot({ path: path.join(ARTIFACTS, 'list-killed-local.png') });
      const federatedList = await openPage(listUrl(`RemoteInstance = "${peerName}" AND AgentState = "completed"`));
      await federatedList.getByText(federatedId).first().waitFor({ timeout: 30_000 });
      await federatedList.screenshot({ path: path.join(ARTIFACTS, 'list-federated-completed.png') });

      // One run's page: its summary and the words of its steps.
      await killedList.getByRole('link', { name: killedId }).first().click();
      await killedList.getByText(`tester agent · task ui-killed`).first().waitFor({ timeout: 30_000 });
      await killedList.getByText('turn 1: run_tests `sleep 300`').first().waitFor({ timeout: 30_000 });
      await killedList.screenshot({ path: path.join(ARTIFACTS, 'run-killed-local.png'), fullPage: true });
    },
  );
});
