import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local server that speaks the Anthropic Messages API (POST /v1/messages), scripted: tool_use and
 * text replies, error statuses (429, 500, 529, 401, ...) and slow answers. The integration tests script
 * it per test (it is the only thing they replace); `npm run model:scripted` runs it with a short demo
 * so that an agent can be watched turn by turn without an Anthropic account.
 */
export interface RecordedRequest {
  headers: http.IncomingHttpHeaders;
  body: { model: string; system?: string; messages: Array<{ role: string; content: unknown }>; tools?: Array<{ name: string }> };
  /** Which model turn this request is for: (messages - 1) / 2. */
  turn: number;
}

export interface ScriptedResponse {
  status: number;
  body: unknown;
  delayMs?: number;
}

export type Script = (request: RecordedRequest, callIndex: number) => ScriptedResponse;

type Block = { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: unknown };

function message(content: Block[], stopReason: string): ScriptedResponse {
  return {
    status: 200,
    body: {
      id: `msg_${randomUUID()}`,
      type: 'message',
      role: 'assistant',
      model: 'claude-test',
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: { input_tokens: 100, output_tokens: 20 },
    },
  };
}

export const reply = {
  toolUse: (...calls: Array<{ name: string; input: unknown }>): ScriptedResponse =>
    message([{ type: 'text', text: 'Working on it.' }, ...calls.map((call) => ({ type: 'tool_use' as const, id: `toolu_${randomUUID().replace(/-/g, '')}`, ...call }))], 'tool_use'),
  text: (text: string): ScriptedResponse => message([{ type: 'text', text }], 'end_turn'),
  error: (status: number, type: string, text = `${type} (scripted)`): ScriptedResponse => ({ status, body: { type: 'error', error: { type, message: text } } }),
};

/** A script that answers turn N with turns[N]; an array entry answers successive calls of that turn (for retries). */
export function byTurn(turns: Array<ScriptedResponse | ScriptedResponse[]>): Script {
  const callsPerTurn = new Map<number, number>();
  return (request) => {
    const entry = turns[request.turn] ?? reply.text('Done.');
    const seen = callsPerTurn.get(request.turn) ?? 0;
    callsPerTurn.set(request.turn, seen + 1);
    return Array.isArray(entry) ? (entry[Math.min(seen, entry.length - 1)] ?? reply.text('Done.')) : entry;
  };
}

/**
 * One script per kind of agent: the first script whose key appears in the agent's first message (its
 * work items) answers; other agents finish at once. Lets several agents share one server.
 */
export function byWorkItem(scripts: Record<string, Script>): Script {
  const done = byTurn([reply.text('Done.')]);
  return (request, callIndex) => {
    const firstMessage = JSON.stringify(request.body.messages[0]);
    const script = Object.entries(scripts).find(([workItem]) => firstMessage.includes(workItem))?.[1] ?? done;
    return script(request, callIndex);
  };
}

export class FakeAnthropic {
  readonly requests: RecordedRequest[] = [];
  private server: http.Server | null = null;
  private readonly pending = new Set<NodeJS.Timeout>();
  url = '';

  constructor(private script: Script) {}

  setScript(script: Script): void {
    this.script = script;
  }

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'not found' } }));
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedRequest['body'];
        const request: RecordedRequest = { headers: req.headers, body, turn: Math.floor((body.messages.length - 1) / 2) };
        this.requests.push(request);
        const response = this.script(request, this.requests.length - 1);
        const timer = setTimeout(() => {
          this.pending.delete(timer);
          if (!res.destroyed) res.writeHead(response.status, { 'content-type': 'application/json', 'request-id': `req_${randomUUID()}` }).end(JSON.stringify(response.body));
        }, response.delayMs ?? 0);
        this.pending.add(timer);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const timer of this.pending) clearTimeout(timer);
    this.pending.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

/** The demo: look around, write NOTES.md from the work items, check the result, finish. */
export const demoScript: Script = (request) => {
  const workItems = JSON.stringify(request.body.messages[0]?.content ?? '');
  const steps = [
    () => reply.toolUse({ name: 'list_files', input: { path: '.' } }),
    () => reply.toolUse({ name: 'write_file', input: { path: 'NOTES.md', content: `# Notes from the scripted agent\n\nWork items: ${workItems}\n` } }),
    () => reply.toolUse({ name: 'run_shell', input: { command: 'git status --short && wc -l NOTES.md' } }),
    () => reply.text('Wrote NOTES.md with the work items.'),
  ];
  const step = steps[Math.min(request.turn, steps.length - 1)];
  return step ? step() : reply.text('Done.');
};

if (require.main === module) {
  const port = Number(process.env.SCRIPTED_MODEL_PORT ?? 4010);
  const server = new FakeAnthropic(demoScript);
  server
    .start(port)
    .then(() => {
      process.stdout.write(`scripted Messages API on ${server.url} (ANTHROPIC_BASE_URL=${server.url}); Ctrl-C stops it\n`);
    })
    .catch((error: unknown) => {
      process.stderr.write(`scripted model server: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    });
}
