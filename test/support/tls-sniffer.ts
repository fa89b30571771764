import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/** CLIENT_SSL in the capability flags of a client's first packet: it asks to switch to TLS before logging in. */
const CLIENT_SSL = 0x800;

/**
 * A TCP relay in front of a MySQL/MariaDB server that tells, for each connection, whether the client switched to
 * TLS: after the server's greeting, a TLS client sends a short SSLRequest packet with CLIENT_SSL set and then a TLS
 * record (a ClientHello: 0x16 0x03 …); a plain client sends its login packet and, after it, MySQL packets.
 */
export class TlsSniffer {
  /** One entry per connection whose first client bytes were seen: true when it went on in TLS. */
  readonly verdicts: boolean[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TlsSniffer> {
    let sniffer: TlsSniffer | undefined;
    const server = createServer((client) => sniffer!.relay(client, target));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    sniffer = new TlsSniffer(server, port);
    return sniffer;
  }

  get host(): string {
    return '127.0.0.1';
  }

  get tls(): number {
    return this.verdicts.filter((v) => v).length;
  }

  get plain(): number {
    return this.verdicts.filter((v) => !v).length;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: Socket, target: { host: string; port: number }): void {
    const upstream = tcpConnect(target.port, target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let seen = Buffer.alloc(0);
    let judged = false;
    client.on('data', (d: Buffer) => {
      if (!judged) {
        seen = Buffer.concat([seen, d]);
        const length = seen.length >= 4 ? seen.readUIntLE(0, 3) : Number.POSITIVE_INFINITY;
        const asksTls = seen.length >= 8 && (seen.readUInt32LE(4) & CLIENT_SSL) !== 0;
        if (seen.length >= 4 + length && !asksTls) {
          judged = true;
          this.verdicts.push(false);
        } else if (seen.length >= 4 + length + 2) {
          // The SSLRequest and the two bytes after it: a TLS record's type and major version.
          judged = true;
          this.verdicts.push(seen[4 + length] === 0x16 && seen[5 + length] === 0x03);
        }
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
  }
}
