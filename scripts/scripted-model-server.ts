import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local server that speaks the Anthropic Messages API (POST /v1/messages), scripted: tool_use and
 * text replies, streamed (server-sent events, as the SDK's streaming helper reads them) or whole,
 * error statuses (429, 500, 529, 401, ...), errors in the middle of a stream and slow answers. Like
 * the real API it checks what it is sent: Anthropic-defined tool types, at most four cache
 * breakpoints, tool results that answer the previous reply's tool calls, and the model's context
 * window; it keeps a prompt cache keyed by the exact prefix up to each breakpoint and reports
 * input, cache-write, cache-read and output tokens (about four characters per token). The
 * integration tests script it per test (it is the only thing they replace); `npm run model:scripted`
 * runs it with a short demo so that an agent can be watched turn by turn without an Anthropic account.
 */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

type CacheControl = { type: 'ephemeral' } | undefined;
type TextBlock = { type: 'text'; text: string; cache_control?: CacheControl };
type RequestTool = {
  name: string;
  type?: string;
  description?: string;
  input_schema?: unknown;
  cache_control?: CacheControl;
};
type RequestBlock = {
  type: string;
  id?: string;
  tool_use_id?: string;
  cache_control?: CacheControl;
  [key: string]: unknown;
};

export interface RecordedRequest {
  headers: http.IncomingHttpHeaders;
  body: {
    model: string;
    stream?: boolean;
    system?: string | TextBlock[];
    messages: Array<{ role: string; content: string | RequestBlock[] }>;
    tools?: RequestTool[];
  };
  /** Which model turn this request is for: (messages - 1) / 2. */
  turn: number;
  /** What the server reported (set once it answered 200). */
  usage?: Usage;
  /** A streamed answer: the events it had, how many were sent, and whether the client went away before the end. */
  stream?: { events: number; sent: number; aborted: boolean };
  /** When the request's body had arrived, and when its answer was written to the end (ms since the epoch). */
  receivedAt: number;
  answeredAt?: number;
}

export interface ScriptedResponse {
  status: number;
  body: unknown;
  delayMs?: number;
  /** Streamed answers: the pause between two events (a slow generation). */
  eventDelayMs?: number;
  /** Streamed answers: an error event instead of the rest of the stream, after this many events. */
  streamError?: { afterEvents: number; type: string; message?: string };
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
    },
  };
}

export const EDITOR = 'str_replace_based_edit_tool';

const toolUses = (calls: Array<{ name: string; input: unknown }>): Block[] =>
  calls.map((call) => ({ type: 'tool_use' as const, id: `toolu_${randomUUID().replace(/-/g, '')}`, ...call }));

export const reply = {
  toolUse: (...calls: Array<{ name: string; input: unknown }>): ScriptedResponse =>
    message([{ type: 'text', text: 'Working on it.' }, ...toolUses(calls)], 'tool_use'),
  /** Some text, then tool calls (none: the model is done). */
  say: (text: string, ...calls: Array<{ name: string; input: unknown }>): ScriptedResponse =>
    message([{ type: 'text', text }, ...toolUses(calls)], calls.length > 0 ? 'tool_use' : 'end_turn'),
  text: (text: string): ScriptedResponse => message([{ type: 'text', text }], 'end_turn'),
  error: (status: number, type: string, text = `${type} (scripted)`): ScriptedResponse => ({
    status,
    body: { type: 'error', error: { type, message: text } },
  }),
};

/** Tool calls as the model writes them: the bash tool and the text editor. */
export const call = {
  bash: (command: string) => ({ name: 'bash', input: { command } }),
  restartBash: () => ({ name: 'bash', input: { restart: true } }),
  view: (path: string, viewRange?: [number, number]) => ({
    name: EDITOR,
    input: { command: 'view', path, ...(viewRange ? { view_range: viewRange } : {}) },
  }),
  create: (path: string, fileText: string) => ({
    name: EDITOR,
    input: { command: 'create', path, file_text: fileText },
  }),
  replace: (path: string, oldStr: string, newStr: string) => ({
    name: EDITOR,
    input: { command: 'str_replace', path, old_str: oldStr, new_str: newStr },
  }),
  insert: (path: string, insertLine: number, insertText: string) => ({
    name: EDITOR,
    input: { command: 'insert', path, insert_line: insertLine, insert_text: insertText },
  }),
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

/** Every token the server reported for these requests, summed, in the orchestrator's words. */
export function reportedUsage(requests: RecordedRequest[]): {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
} {
  const sum = (key: keyof Usage): number => requests.reduce((total, request) => total + (request.usage?.[key] ?? 0), 0);
  return {
    inputTokens: sum('input_tokens'),
    outputTokens: sum('output_tokens'),
    cacheCreationInputTokens: sum('cache_creation_input_tokens'),
    cacheReadInputTokens: sum('cache_read_input_tokens'),
  };
}

/** The tools the API defines itself, by type, with the name each must have. */
const ANTHROPIC_TOOL_TYPES: Record<string, string> = { bash_20250124: 'bash', text_editor_20250728: EDITOR };
const MAX_CACHE_BREAKPOINTS = 4;
const DEFAULT_CONTEXT_WINDOW = 200_000;

export const tokensOf = (value: unknown): number => Math.ceil(JSON.stringify(value).length / 4);

class RequestRefused extends Error {}

/**
 * The request's parts in the order the API reads them (tools, system, messages), each with whether a
 * cache breakpoint ends there; the value leaves the marker out, as the cache matches on content.
 */
function segmentsOf(body: RecordedRequest['body']): Array<{ value: unknown; breakpoint: boolean }> {
  const system: TextBlock[] =
    typeof body.system === 'string' ? [{ type: 'text', text: body.system }] : (body.system ?? []);
  const blocks = body.messages.flatMap((entry) =>
    (typeof entry.content === 'string' ? [{ type: 'text', text: entry.content }] : entry.content).map((block) => ({
      role: entry.role,
      block,
    })),
  );
  const segment = (
    part: { cache_control?: CacheControl },
    wrap: (unmarked: object) => unknown = (unmarked) => unmarked,
  ) => {
    const { cache_control: marker, ...unmarked } = part;
    return { value: wrap(unmarked), breakpoint: marker !== undefined };
  };
  return [
    ...(body.tools ?? []).map((tool) => segment(tool)),
    ...system.map((block) => segment(block)),
    ...blocks.map(({ role, block }) => segment(block, (unmarked) => ({ role, block: unmarked }))),
  ];
}

/** What the real API refuses with a 400: checked before any script runs. */
function validate(body: RecordedRequest['body'], contextWindow: number): void {
  for (const tool of body.tools ?? []) {
    if (tool.type !== undefined && tool.type !== 'custom') {
      const expected = ANTHROPIC_TOOL_TYPES[tool.type];
      if (expected === undefined) throw new RequestRefused(`tools: unknown tool type ${tool.type}`);
      if (tool.name !== expected) throw new RequestRefused(`tools: a ${tool.type} tool must be named ${expected}`);
    } else if (typeof tool.input_schema !== 'object') {
      throw new RequestRefused(`tools.${tool.name}: input_schema is required`);
    }
  }
  const segments = segmentsOf(body);
  if (segments.filter((segment) => segment.breakpoint).length > MAX_CACHE_BREAKPOINTS) {
    throw new RequestRefused(`A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided`);
  }
  for (const [index, entry] of body.messages.entries()) {
    if (typeof entry.content === 'string') continue;
    const previous = body.messages[index - 1];
    const asked = new Set(
      typeof previous?.content === 'string'
        ? []
        : (previous?.content ?? []).filter((block) => block.type === 'tool_use').map((block) => block.id),
    );
    for (const block of entry.content) {
      if (block.type === 'tool_result' && !asked.has(block.tool_use_id))
        throw new RequestRefused(
          `messages.${index}: tool_result ${String(block.tool_use_id)} answers no tool_use of the previous message`,
        );
    }
  }
  const prompt = segments.reduce((sum, segment) => sum + tokensOf(segment.value), 0);
  if (prompt > contextWindow)
    throw new RequestRefused(`prompt is too long: ${prompt} tokens > ${contextWindow} maximum`);
}

/** The SSE events of a whole message, as the API streams it. */
function streamEventsOf(
  body: { content: Block[]; stop_reason: string } & Record<string, unknown>,
  usage: Usage,
): Array<{ event: string; data: unknown }> {
  const events: Array<{ event: string; data: unknown }> = [
    {
      event: 'message_start',
      data: {
        type: 'message_start',
        message: { ...body, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } },
      },
    },
  ];
  for (const [index, block] of body.content.entries()) {
    // Small pieces, as a model writes them; at most about 64 per block (a client re-reads a tool's partial input on
    // each).
    const pieces = (text: string, size: number): string[] =>
      text.match(new RegExp(`[\\s\\S]{1,${Math.max(size, Math.ceil(text.length / 64))}}`, 'g')) ?? [];
    if (block.type === 'text') {
      events.push({
        event: 'content_block_start',
        data: { type: 'content_block_start', index, content_block: { type: 'text', text: '' } },
      });
      for (const text of pieces(block.text, 16))
        events.push({
          event: 'content_block_delta',
          data: { type: 'content_block_delta', index, delta: { type: 'text_delta', text } },
        });
    } else {
      events.push({
        event: 'content_block_start',
        data: { type: 'content_block_start', index, content_block: { ...block, input: {} } },
      });
      for (const partial_json of pieces(JSON.stringify(block.input), 32))
        events.push({
          event: 'content_block_delta',
          data: { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } },
        });
    }
    events.push({ event: 'content_block_stop', data: { type: 'content_block_stop', index } });
    if (index === 0) events.push({ event: 'ping', data: { type: 'ping' } });
  }
  events.push({
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: body.stop_reason, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    },
  });
  events.push({ event: 'message_stop', data: { type: 'message_stop' } });
  return events;
}

export interface FakeAnthropicOptions {
  /** Context windows per model (default 200,000 tokens): a longer prompt is refused as too long. */
  contextWindows?: Record<string, number>;
}

export class FakeAnthropic {
  readonly requests: RecordedRequest[] = [];
  private server: http.Server | null = null;
  private readonly pending = new Set<NodeJS.Timeout>();
  /** Prompt-cache entries: hash of the exact prefix up to a breakpoint → its tokens. */
  private readonly cache = new Map<string, number>();
  url = '';

  constructor(
    private script: Script,
    private readonly options: FakeAnthropicOptions = {},
  ) {}

  setScript(script: Script): void {
    this.script = script;
  }

  /** The requests of the agent whose work items include `workItem`. */
  requestsOf(workItem: string): RecordedRequest[] {
    return this.requests.filter((request) => JSON.stringify(request.body.messages[0]).includes(workItem));
  }

  /** Reads the longest cached prefix that ends at a breakpoint, writes the rest up to the last breakpoint. */
  private usageFor(body: RecordedRequest['body'], content: unknown): Usage {
    const segments = segmentsOf(body);
    const prefixes: Array<{ key: string; tokens: number }> = [];
    const hash = createHash('sha256');
    let tokens = 0;
    for (const segment of segments) {
      hash.update(JSON.stringify(segment.value));
      tokens += tokensOf(segment.value);
      if (segment.breakpoint) prefixes.push({ key: `${body.model}:${hash.copy().digest('hex')}`, tokens });
    }
    const read = [...prefixes].reverse().find((prefix) => this.cache.has(prefix.key))?.tokens ?? 0;
    const written = Math.max(0, (prefixes.at(-1)?.tokens ?? 0) - read);
    for (const prefix of prefixes) this.cache.set(prefix.key, prefix.tokens);
    return {
      input_tokens: tokens - read - written,
      output_tokens: Math.max(1, tokensOf(content)),
      cache_creation_input_tokens: written,
      cache_read_input_tokens: read,
    };
  }

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.answer(req, res, Buffer.concat(chunks)));
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private later(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      action();
    }, ms);
    this.pending.add(timer);
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): void {
    const json = (status: number, body: unknown): void => {
      if (!res.destroyed)
        res
          .writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${randomUUID()}` })
          .end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
      json(404, { type: 'error', error: { type: 'not_found_error', message: 'not found' } });
      return;
    }
    const body = JSON.parse(raw.toString('utf8')) as RecordedRequest['body'];
    const turn = Math.floor((body.messages.length - 1) / 2);
    const request: RecordedRequest = { headers: req.headers, body, turn, receivedAt: Date.now() };
    this.requests.push(request);
    try {
      validate(body, this.options.contextWindows?.[body.model] ?? DEFAULT_CONTEXT_WINDOW);
    } catch (error) {
      if (!(error instanceof RequestRefused)) throw error;
      json(400, { type: 'error', error: { type: 'invalid_request_error', message: error.message } });
      return;
    }
    const response = this.script(request, this.requests.length - 1);
    this.later(response.delayMs ?? 0, () => {
      if (response.status !== 200) {
        json(response.status, response.body);
        return;
      }
      const reply = response.body as { content: Block[]; stop_reason: string } & Record<string, unknown>;
      const usage = this.usageFor(body, reply.content);
      request.usage = usage;
      if (body.stream === true) this.stream(req, res, request, streamEventsOf(reply, usage), response);
      else json(200, { ...reply, usage });
      if (body.stream !== true) request.answeredAt = Date.now();
    });
  }

  private stream(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    request: RecordedRequest,
    events: Array<{ event: string; data: unknown }>,
    response: ScriptedResponse,
  ): void {
    const progress = { events: events.length, sent: 0, aborted: false };
    request.stream = progress;
    res.on('close', () => {
      if (!res.writableFinished) progress.aborted = true;
    });
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'request-id': `req_${randomUUID()}`,
    });
    const next = (): void => {
      if (res.destroyed) return;
      if (response.streamError && progress.sent >= response.streamError.afterEvents) {
        const error = {
          type: 'error',
          error: {
            type: response.streamError.type,
            message: response.streamError.message ?? `${response.streamError.type} (scripted, mid-stream)`,
          },
        };
        res.end(`event: error\ndata: ${JSON.stringify(error)}\n\n`);
        return;
      }
      const event = events[progress.sent];
      if (event === undefined) {
        res.end();
        request.answeredAt = Date.now();
        return;
      }
      res.write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
      progress.sent += 1;
      if (response.eventDelayMs) this.later(response.eventDelayMs, next);
      else next();
    };
    next();
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
    () => reply.toolUse(call.view('.')),
    () => reply.toolUse(call.create('NOTES.md', `# Notes from the scripted agent\n\nWork items: ${workItems}\n`)),
    () => reply.toolUse(call.bash('git status --short && wc -l NOTES.md')),
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
      process.stdout.write(
        `scripted Messages API on ${server.url} (ANTHROPIC_BASE_URL=${server.url}); Ctrl-C stops it\n`,
      );
    })
    .catch((error: unknown) => {
      process.stderr.write(`scripted model server: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    });
}
