import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import type { Connection, SslOptions } from 'mysql2/promise';
import type { SourceTls } from '../config/schema.js';
import { isTlsRefusal, SourceError } from '../errors.js';

interface Endpoint {
  host: string;
  port: number;
  ssl: SourceTls;
}

const endpointKey = (s: Endpoint): string => `${s.host}:${s.port}`;

/**
 * Servers that answered a `preferred` connection without offering TLS. mysql2 cannot fall back to plain text by
 * itself (with `ssl` set it refuses such a server), so `connect` learns it here and the connections that are
 * not opened through it (the control pool, the binlog stream) follow what it learnt last.
 */
const offersNoTls = new Set<string>();

export function rememberNoTls(s: Endpoint, none: boolean): void {
  if (none) offersNoTls.add(endpointKey(s));
  else offersNoTls.delete(endpointKey(s));
}

// One object per config, so mysql2 builds its secure context once and resumes TLS sessions across connections.
const built = new WeakMap<SourceTls, SslOptions>();

/**
 * mysql2's `ssl` option for the configured mode, or undefined for none. `tryTls` asks for TLS in `preferred` mode even
 * where the server offered none last time.
 */
export function sslOptions(s: Endpoint, tryTls = false): SslOptions | undefined {
  const { mode } = s.ssl;
  if (mode === 'disabled') return undefined;
  if (mode === 'preferred' && !tryTls && offersNoTls.has(endpointKey(s))) return undefined;
  let options = built.get(s.ssl);
  if (!options) {
    // As with the mysql client, preferred and required encrypt without checking who answers; verify-ca checks the
    // chain up to the CA, verify-identity the host name too. Without `ca` the chain goes to Node's public roots.
    const verify = mode === 'verify-ca' || mode === 'verify-identity';
    options = { rejectUnauthorized: verify, verifyIdentity: mode === 'verify-identity' };
    if (verify && s.ssl.ca !== undefined) options.ca = s.ssl.ca;
    if (s.ssl.cert !== undefined) options.cert = s.ssl.cert;
    if (s.ssl.key !== undefined) options.key = s.ssl.key;
    built.set(s.ssl, options);
  }
  return options;
}

/**
 * mysql2's `stream` option for verify-identity with an IP address, else undefined. mysql2 sends no server name (SNI)
 * for an address, and Node then checks the certificate against "localhost" unless the socket carries the host it
 * was opened to: without this, a certificate for localhost would pass for any address, and one for the address fail.
 */
export function identityStream(s: Endpoint): ((opts: { config: { enableKeepAlive?: boolean; keepAliveInitialDelay?: number } }) => Socket) | undefined {
  if (s.ssl.mode !== 'verify-identity' || isIP(s.host) === 0) return undefined;
  return ({ config }) => {
    const socket = tcpConnect(s.port, s.host);
    // Where Node's TLS reads the name to verify when there is no server name; net sets it only for names it resolves.
    (socket as Socket & { _host: string | null })._host = s.host;
    // What mysql2 does to the sockets it opens itself.
    socket.setNoDelay(true);
    if (config.enableKeepAlive) socket.once('connect', () => socket.setKeepAlive(true, config.keepAliveInitialDelay));
    return socket;
  };
}

export const serverOffersNoTls = (err: unknown): boolean => (err as { code?: string } | null)?.code === 'HANDSHAKE_NO_SSL_SUPPORT';

/**
 * A TLS failure as a message naming source.ssl and the fix, or undefined when `err` is no TLS failure, or is the network
 * failing during a handshake (a lost connection like any other).
 */
export function describeTlsError(err: unknown, s: Endpoint): SourceError | undefined {
  const e = err as { code?: string; errno?: number; message?: string; reason?: string };
  const where = `${s.host}:${s.port}`;
  const { mode } = s.ssl;
  const message = e.message ?? String(err);
  if (serverOffersNoTls(err)) {
    return new SourceError(
      `the source at ${where} does not offer TLS, which source.ssl.mode ${mode} requires. ` +
        'Turn TLS on at the server (ssl_ca, ssl_cert, ssl_key), or set source.ssl.mode: preferred to connect unencrypted when it offers none.',
      { cause: err },
    );
  }
  if (e.errno === 3159 || /require_secure_transport/i.test(message)) {
    return new SourceError(
      `the source at ${where} takes only encrypted connections (require_secure_transport=ON) and source.ssl.mode is ${mode}. ` +
        'Set source.ssl.mode: verify-identity (or verify-ca, or required).',
      { cause: err },
    );
  }
  if (!isTlsRefusal(err)) return undefined;
  if (/altnames|is not cert's CN|does not match certificate/i.test(message)) {
    return new SourceError(
      `the TLS certificate of the source at ${where} is not for the host ${s.host} (${e.reason ?? message}); source.ssl.mode verify-identity checks the host name. ` +
        `Connect by a name the certificate holds, give the server a certificate for ${s.host}, or set source.ssl.mode: verify-ca to check the chain only.`,
      { cause: err },
    );
  }
  if (mode === 'verify-ca' || mode === 'verify-identity') {
    const against = s.ssl.ca === undefined ? "Node's public root CAs (source.ssl.ca is not set)" : 'the CA in source.ssl.ca';
    return new SourceError(
      `the TLS certificate of the source at ${where} was refused: ${message}. source.ssl.mode ${mode} checks it against ${against}; ` +
        "set source.ssl.ca to the CA that signed the server's certificate (on MySQL, ca.pem in its data directory unless ssl_ca names another).",
      { cause: err },
    );
  }
  return new SourceError(`TLS with the source at ${where} failed: ${message}. Check source.ssl (mode ${mode}).`, { cause: err });
}

/** The TLS version and cipher of a connection as the server sees them; null when it is not encrypted. */
export async function sessionTls(conn: Connection): Promise<{ version: string; cipher: string } | null> {
  const [rows] = await conn.query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')");
  const status = Object.fromEntries((rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name.toLowerCase(), r.Value]));
  const version = status.ssl_version ?? '';
  return version === '' ? null : { version, cipher: status.ssl_cipher ?? '' };
}
