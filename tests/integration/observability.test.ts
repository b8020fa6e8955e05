import { issueApiToken } from '../../api/auth';
import { byWorkItem, FakeAnthropic, reply, byTurn, reportedUsage } from '../../scripts/scripted-model-server';
import { agentStatusQuery, type AgentStatus } from '../../workflows/agent-run/contract';
import { currentDetails } from '../helpers/history-words';
import { request } from '../helpers/http';
import { startTestInstance, type TestInstance } from '../helpers/instance';
import { waitUntil } from '../helpers/wait';
import { createRepository } from '../helpers/git-repo';
import { sample } from '../helpers/metrics';

/**
 * What an operator reads beside the Web UI: Prometheus metrics of the API and the worker, JSON logs
 * correlated by agent and workflow, and workflow histories that stay small and hold no secret.
 */
const MODEL_KEY = `sk-ant-test-${Math.random().toString(36).slice(2)}-secret`;
const model = new FakeAnthropic(
  byWorkItem({
    'print a lot': byTurn([
      // 300 KB of output: the transcript in PostgreSQL keeps what the cap allows, the history only a label.
      reply.toolUse({ name: 'bash', input: { command: "head -c 300000 /dev/zero | tr '\\0' x" } }),
      reply.toolUse({ name: 'bash', input: { command: 'exit 3' } }),
      reply.text('Printed a lot.'),
    ]),
    'sleep long': () => reply.toolUse({ name: 'bash', input: { command: 'sleep 300' } }),
  }),
);

/** Payload bytes (base64 in a history's JSON) as their text, so a scan of a history sees what a person would. */
function readablePayloads(key: string, value: unknown): unknown {
  return key === 'data' && typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : value;
}

describe('metrics, logs and small, secret-free histories', () => {
  let instance: TestInstance;
  let token: string;
  let repository: string;

  beforeAll(async () => {
    await model.start();
    // One slot: the second agent waits in the queue, so queue wait is measured too.
    instance = await startTestInstance({
      ANTHROPIC_API_KEY: MODEL_KEY,
      ANTHROPIC_BASE_URL: model.url,
      MAX_CONCURRENT_AGENTS: '1',
    });
    ({ token } = await issueApiToken(instance.prisma, `obs-${Date.now()}`));
    repository = await createRepository({ 'README.md': '# Observed\n' });
  });
  afterAll(async () => {
    await instance.stop();
    await model.stop();
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const spawn = async (taskId: string, workItem: string): Promise<string> => {
    const response = await request(instance.baseUrl, 'POST', '/agents/spawn', {
      headers: auth(),
      json: { taskId, agentType: 'worker', context: { repository, branch: 'main', workItems: [workItem] } },
    });
    expect(response.status).toBe(202);
    return (response.body as { agentId: string }).agentId;
  };
  const metricsText = async (url: string): Promise<string> => {
    const response = await fetch(url);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return await response.text();
  };

  it(
    'counts spawns, states, queue waits, sandbox starts, kills, model ' +
      'tokens and tool exits, and logs each step with its ids',
    async () => {
      // A long agent takes the only slot; the second waits queued until the first is killed.
      const sleeper = await spawn('obs-sleep', 'sleep long');
      const sleeperHandle = instance.temporal.workflow.getHandle(sleeper);
      await waitUntil(async () => (await sleeperHandle.query(agentStatusQuery)).lastTool === 'bash', 60_000);
      // The kill must find the tool running (its cancelled attempt is what the metric counts), not only scheduled.
      await waitUntil(
        async () => (await instance.prisma.toolCall.count({ where: { agentId: sleeper, status: 'started' } })) === 1,
        30_000,
      );
      const printer = await spawn('obs-print', 'print a lot');
      await waitUntil(
        async () => (await instance.prisma.agent.findUniqueOrThrow({ where: { id: printer } })).state === 'queued',
        30_000,
      );
      // The live view says what the queued run waits for, and what the running one does.
      expect(await currentDetails(instance.temporal, printer)).toContain('**queued**');
      expect(await currentDetails(instance.temporal, printer)).toContain('waiting for a sandbox slot: 0 ahead');
      expect(await currentDetails(instance.temporal, sleeper)).toContain('running turn 1: bash `sleep 300`');

      expect((await request(instance.baseUrl, 'POST', `/agents/${sleeper}/kill`, { headers: auth() })).status).toBe(
        202,
      );
      expect(((await sleeperHandle.result()) as AgentStatus).state).toBe('killed');
      const printed = (await instance.temporal.workflow.getHandle(printer).result()) as AgentStatus;
      expect(printed.state).toBe('completed');
      // A refused spawn is counted by its reason.
      const refused = await request(instance.baseUrl, 'POST', '/agents/spawn', {
        headers: auth(),
        json: {
          taskId: 'obs-refused',
          agentType: 'worker',
          context: { repository: 'ftp://example.com/repo', branch: 'main', workItems: ['x'] },
        },
      });
      expect(refused.status).toBe(400);
      const refusedCode = (refused.body as { error: { code: string } }).error.code;

      const api = await metricsText(`${instance.baseUrl}/metrics`);
      const accepted = ['spawning', 'queued'].map((outcome) =>
        sample(api, 'orchestrator_agent_spawns_total', { agent_type: 'worker', runs_on: 'local', outcome }),
      );
      expect(accepted[0]! + accepted[1]!).toBe(2);
      expect(sample(api, 'orchestrator_agent_spawns_total', { agent_type: 'worker', outcome: refusedCode })).toBe(1);
      expect(sample(api, 'orchestrator_agents', { state: 'completed' })).toBe(1);
      expect(sample(api, 'orchestrator_agents', { state: 'killed' })).toBe(1);
      expect(sample(api, 'orchestrator_agent_queue_length')).toBe(0);
      expect(
        sample(api, 'orchestrator_http_request_duration_seconds_count', {
          method: 'POST',
          route: '/agents/:agentId/kill',
          status: '202',
        }),
      ).toBe(1);

      const worker = await metricsText(instance.workerMetricsUrl);
      expect(sample(worker, 'orchestrator_agent_queue_wait_seconds_count')).toBe(1);
      expect(sample(worker, 'orchestrator_sandbox_start_seconds_count', { runtime: 'runc' })).toBe(2);
      expect(sample(worker, 'orchestrator_kill_seconds_count')).toBe(1);
      // Every token the Messages API reported, by kind: the prompt's uncached part, cache writes and reads, and the
      // output.
      const reported = reportedUsage(model.requests);
      expect(reported.cacheReadInputTokens).toBeGreaterThan(0);
      expect(sample(worker, 'orchestrator_model_tokens_total', { kind: 'input' })).toBe(reported.inputTokens);
      expect(sample(worker, 'orchestrator_model_tokens_total', { kind: 'cache_creation' })).toBe(
        reported.cacheCreationInputTokens,
      );
      expect(sample(worker, 'orchestrator_model_tokens_total', { kind: 'cache_read' })).toBe(
        reported.cacheReadInputTokens,
      );
      expect(sample(worker, 'orchestrator_model_tokens_total', { kind: 'output' })).toBe(reported.outputTokens);
      expect(sample(worker, 'orchestrator_model_cost_usd_total', { model: 'claude-sonnet-5-5' })).toBeGreaterThan(0);
      expect(sample(worker, 'orchestrator_model_request_seconds_count', { outcome: 'ok' })).toBe(4);
      expect(sample(worker, 'orchestrator_tool_calls_total', { tool: 'bash', exit_status: '0' })).toBe(1);
      expect(sample(worker, 'orchestrator_tool_calls_total', { tool: 'bash', exit_status: 'nonzero' })).toBe(1);
      expect(sample(worker, 'orchestrator_agent_runs_ended_total', { agent_type: 'worker', state: 'killed' })).toBe(1);
      expect(sample(worker, 'orchestrator_agent_runs_ended_total', { agent_type: 'worker', state: 'completed' })).toBe(
        1,
      );
      expect(
        sample(worker, 'orchestrator_activity_duration_seconds_count', { activity: 'runTool', outcome: 'cancelled' }),
      ).toBe(1);

      // Logs: JSON lines that name the agent, its workflow and run, with latency and status for requests.
      const lines = instance.logLines().map((line) => JSON.parse(line) as Record<string, unknown>);
      const toolLines = lines.filter((line) => line.activity === 'runTool' && line.agentId === printer);
      expect(toolLines).toHaveLength(2);
      const { runId } = await instance.temporal.workflow.getHandle(printer).describe();
      expect(toolLines[0]).toMatchObject({ workflowId: printer, runId, attempt: 1, msg: 'activity completed' });
      expect(typeof toolLines[0]?.durationMs).toBe('number');
      const killRequest = lines.find(
        (line) => line.agentId === sleeper && (line.req as { url?: string } | undefined)?.url?.endsWith('/kill'),
      );
      expect(killRequest).toMatchObject({
        res: { statusCode: 202 },
        req: { url: `/agents/${sleeper}/kill`, headers: { authorization: '***' } },
      });
      expect(typeof killRequest?.responseTime).toBe('number');
    },
  );

  it(
    'keeps histories small and keeps the model key and API tokens out of ' + 'histories, search attributes and logs',
    async () => {
      const agents = await instance.prisma.agent.findMany({ select: { id: true } });
      expect(agents.length).toBeGreaterThanOrEqual(2);
      // The twin that must pass first: the transcript in PostgreSQL holds the large output the history does not.
      const output = await instance.prisma.toolCall.findFirstOrThrow({ where: { name: 'bash', exitCode: 0 } });
      expect(output.output?.length ?? 0).toBeGreaterThan(60_000);

      // The twin: decoded payloads are what the scan reads (the input names the work item).
      const printer = await instance.prisma.agent.findFirstOrThrow({ where: { taskId: 'obs-print' } });
      const printerHistory = await instance.temporal.workflow.getHandle(printer.id).fetchHistory();
      expect(
        (printerHistory.events ?? []).map((event) => JSON.stringify(event, readablePayloads)).join('\n'),
      ).toContain('print a lot');

      for (const { id } of agents) {
        const handle = instance.temporal.workflow.getHandle(id);
        const history = await handle.fetchHistory();
        const events = (history.events ?? []).map((event) => JSON.stringify(event, readablePayloads));
        const payloads = events.join('\n');
        for (const event of events) expect(event.length).toBeLessThan(16 * 1024);
        const description = JSON.stringify(await handle.describe(), (_key, value: unknown) =>
          typeof value === 'bigint' ? String(value) : value,
        );
        for (const secret of [MODEL_KEY, token]) {
          expect(payloads).not.toContain(secret);
          expect(description).not.toContain(secret);
        }
      }
      const logs = instance.logLines().join('\n');
      expect(logs).toContain('"authorization":"***"'); // requests were logged, with the header redacted
      expect(logs).not.toContain(MODEL_KEY);
      expect(logs).not.toContain(token);
      expect(logs).not.toContain('PRIVATE KEY');
    },
  );
});
