import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CallbackTokenError, type callbackVerifier } from '../../client/callback-receiver';
import type { SessionCallbackBody } from '../../workflows/session-callbacks/contract';

/**
 * A gateway's callback endpoint on loopback: verifies each callback's token with the shipped helper,
 * answers 503 while `down`, keeps what it accepted.
 */
export class CallbackReceiver {
  readonly accepted: SessionCallbackBody[] = [];
  readonly refusals: string[] = [];
  down = false;
  attemptsWhileDown = 0;
  private server: Server | null = null;
  url = '';
  constructor(private readonly verify: () => ReturnType<typeof callbackVerifier>) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        if (this.down) {
          this.attemptsWhileDown += 1;
          res.writeHead(503).end();
          return;
        }
        const body = JSON.parse(text) as SessionCallbackBody;
        this.verify()(req.headers.authorization, body.sessionId, body.eventId)
          .then(() => {
            this.accepted.push(body);
            res.writeHead(204).end();
          })
          .catch((error: unknown) => {
            // Keys it could not fetch are a reason to be asked again, not a refused token.
            if (error instanceof CallbackTokenError && error.reason === 'keys_unavailable') {
              this.attemptsWhileDown += 1;
              res.writeHead(503).end();
              return;
            }
            this.refusals.push(error instanceof CallbackTokenError ? error.reason : String(error));
            res.writeHead(401).end();
          });
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/callbacks`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** The events of one session in sequence order, each once (what a receiver keeps after deduplicating by eventId). */
  eventsOf(sessionId: string): SessionCallbackBody[] {
    const byId = new Map(
      this.accepted.filter((event) => event.sessionId === sessionId).map((event) => [event.eventId, event]),
    );
    return [...byId.values()].sort((a, b) => a.sequence - b.sequence);
  }

  /**
   * Whether an event arrived before one with a lower sequence of the same session (out of order), counting each session
   * once.
   */
  outOfOrderSessions(): string[] {
    const highest = new Map<string, number>();
    const broken = new Set<string>();
    for (const event of this.accepted) {
      const seen = highest.get(event.sessionId) ?? 0;
      // A repeat of an acknowledged event is allowed (at least once); a jump past a missing one is not.
      if (event.sequence > seen + 1) broken.add(event.sessionId);
      highest.set(event.sessionId, Math.max(seen, event.sequence));
    }
    return [...broken];
  }
}
