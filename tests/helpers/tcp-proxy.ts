import net from 'node:net';

/**
 * A loopback TCP proxy in front of an instance, so a test can cut the link the way a network does:
 * while cut, bytes in either direction are dropped and new connections are accepted but never
 * answered, so callers hang until their own timeouts. Restoring resets every connection that lost
 * bytes, and traffic flows again. `cutAfter` cuts the moment the answer to a request containing the
 * text comes back: the request took effect, its answer is lost.
 */
export class TcpProxy {
  port = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private trigger: string | null = null;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => undefined);
      if (this.cut) return; // held: accepted, never answered
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => {
        this.sockets.delete(upstream);
        if (!this.cut) client.destroy();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      let armed = false;
      client.on('data', (chunk: Buffer) => {
        if (this.cut) return;
        if (this.trigger !== null && chunk.toString('latin1').includes(this.trigger)) {
          this.trigger = null;
          armed = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (armed) this.cut = true;
        if (!this.cut) client.write(chunk);
      });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  cutLink(): void {
    this.cut = true;
  }

  /** Cuts the link when the answer to a request containing `text` comes back (the answer is lost). */
  cutAfter(text: string): void {
    this.trigger = text;
  }

  get isCut(): boolean {
    return this.cut;
  }

  restore(): void {
    this.cut = false;
    this.trigger = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async stop(): Promise<void> {
    this.restore();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
