import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * A TCP relay between tidemark and a real server, to make the network misbehave on this machine without
 * privileges: `freeze` stops every byte both ways while the connections stay open (a partition: TCP
 * waits, nothing is refused), `thaw` lets the held bytes through; `down` resets every connection and
 * refuses new ones (a server that went away), `up` accepts again.
 */
export class FaultProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<[Socket, Socket | null]>();
  private frozen = false;
  private held: Socket[] = [];

  private constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const proxy = new FaultProxy(target, 0);
    const port = await proxy.listen(0);
    return Object.assign(proxy, { port });
  }

  get host(): string {
    return '127.0.0.1';
  }

  /** Stops every byte both ways; connections opened meanwhile are accepted and held. */
  freeze(): void {
    this.frozen = true;
    for (const [client, upstream] of this.pairs) {
      client.pause();
      upstream?.pause();
    }
  }

  thaw(): void {
    this.frozen = false;
    for (const [client, upstream] of this.pairs) {
      client.resume();
      upstream?.resume();
    }
    const held = this.held;
    this.held = [];
    for (const client of held) this.relay(client);
  }

  /** Resets every connection and refuses new ones until `up`. */
  async down(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream?.destroy();
    }
    this.pairs.clear();
    for (const client of this.held) client.resetAndDestroy();
    this.held = [];
    await closed;
  }

  async up(): Promise<void> {
    await this.listen(this.port);
  }

  /** Connections relayed now (held ones not counted). */
  get connections(): number {
    return this.pairs.size;
  }

  async stop(): Promise<void> {
    this.thaw();
    await this.down();
  }

  private listen(port: number): Promise<number> {
    const server = createServer((client) => {
      client.on('error', () => {});
      if (this.frozen) {
        client.pause();
        this.held.push(client);
      } else this.relay(client);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  }

  private relay(client: Socket): void {
    const upstream = tcpConnect(this.target.port, this.target.host);
    const pair: [Socket, Socket | null] = [client, upstream];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    // Not pipe(): a piped socket resumes itself when its destination drains, which would leak through a freeze.
    this.forward(client, upstream);
    this.forward(upstream, client);
    if (this.frozen) {
      client.pause();
      upstream.pause();
    }
  }

  private forward(from: Socket, to: Socket): void {
    const late: Buffer[] = [];
    from.on('data', (d: Buffer) => {
      if (this.frozen) late.push(d);
      else {
        for (const b of late.splice(0)) to.write(b);
        to.write(d);
      }
    });
    from.on('resume', () => {
      for (const b of late.splice(0)) to.write(b);
    });
  }
}
