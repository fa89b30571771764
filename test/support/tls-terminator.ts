import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { TLSSocket, connect as tlsConnect } from 'node:tls';

/** A new CA (ca.pem in `dir`) and a server certificate it signed for `altNames` (`DNS:localhost`, `IP:127.0.0.1`, …). */
export function makeCertificates(dir: string, altNames: string): { caFile: string; cert: string; key: string } {
  const at = (f: string) => join(dir, f);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=tidemark test relay CA', '-keyout', at('ca-key.pem'), '-out', at('ca.pem'));
  openssl('req', ...ec, '-subj', '/CN=tidemark test relay', '-keyout', at('key.pem'), '-out', at('csr.pem'));
  writeFileSync(at('ext.cnf'), `subjectAltName=${altNames}\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    at('csr.pem'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    at('ext.cnf'),
    '-out',
    at('cert.pem'),
  );
  return { caFile: at('ca.pem'), cert: readFileSync(at('cert.pem'), 'utf8'), key: readFileSync(at('key.pem'), 'utf8') };
}

/**
 * A relay in front of a MySQL/MariaDB server that ends the client's TLS itself, with a certificate of the test's
 * choosing, and speaks TLS to the server on its own: so a client's check of the server's certificate can be tried
 * with any certificate, against the real server behind. The greeting and the SSLRequest pass as they are.
 */
export class TlsTerminator {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }, identity: { cert: string; key: string }): Promise<TlsTerminator> {
    let relay: TlsTerminator | undefined;
    const server = createServer((client) => relay!.relay(client, target, identity));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    relay = new TlsTerminator(server, port);
    return relay;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => this.sockets.delete(s));
  }

  private relay(client: Socket, target: { host: string; port: number }, identity: { cert: string; key: string }): void {
    const upstream = tcpConnect(target.port, target.host);
    this.track(client);
    this.track(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    const toClient = (d: Buffer) => client.write(d);
    upstream.on('data', toClient);
    let first = Buffer.alloc(0);
    const fromClient = (d: Buffer) => {
      first = Buffer.concat([first, d]);
      if (first.length < 4 || first.length < 4 + first.readUIntLE(0, 3)) return;
      // The client's first packet is complete: its SSLRequest (or plain login) goes to the server as it is.
      client.off('data', fromClient);
      upstream.off('data', toClient);
      const length = 4 + first.readUIntLE(0, 3);
      upstream.write(first.subarray(0, length));
      const secureUpstream = tlsConnect({ socket: upstream, rejectUnauthorized: false });
      // The client's TLS runs over a stream fed from here, so bytes that came with the SSLRequest are not lost.
      const wire = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, done) {
          client.write(chunk, done);
        },
      });
      client.on('data', (b: Buffer) => wire.push(b));
      const rest = first.subarray(length);
      if (rest.length > 0) wire.push(rest);
      const secureClient = new TLSSocket(wire, { isServer: true, cert: identity.cert, key: identity.key });
      secureClient.on('error', closeBoth);
      secureUpstream.on('error', closeBoth);
      secureUpstream.on('close', closeBoth);
      secureClient.on('data', (b: Buffer) => secureUpstream.write(b));
      secureUpstream.on('data', (b: Buffer) => secureClient.write(b));
    };
    client.on('data', fromClient);
  }
}
