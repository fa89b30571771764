import type { Connection } from 'mysql2/promise';
import type { Config } from '../../config/load.js';
import { sessionTls } from '../tls.js';
import { type CheckResult, fail, pass, warn } from './types.js';

const VERIFIED = {
  disabled: '',
  preferred: "the server's certificate is not checked (source.ssl.mode preferred)",
  required: "the server's certificate is not checked (source.ssl.mode required)",
  'verify-ca': "the server's certificate is checked against the CA, not its host name (source.ssl.mode verify-ca)",
  'verify-identity': "the server's certificate is checked against the CA and the host name (source.ssl.mode verify-identity)",
} as const;

/** Whether the connection `check` made is encrypted, with which TLS version and cipher, as the server reports it. */
export async function checkTls(conn: Connection, config: Config): Promise<CheckResult> {
  const { mode } = config.source.ssl;
  let state: Awaited<ReturnType<typeof sessionTls>>;
  try {
    state = await sessionTls(conn);
  } catch (err) {
    return fail('tls', `could not be checked: ${err instanceof Error ? err.message : String(err)}`, 'Resolve the error and run tidemark check again.');
  }
  if (state) return pass('tls', `${state.version}, cipher ${state.cipher}; ${VERIFIED[mode]}`);
  if (mode === 'disabled') return pass('tls', 'not encrypted (source.ssl.mode disabled)');
  return warn(
    'tls',
    'not encrypted: the server offers no TLS, so source.ssl.mode preferred connects in plain text',
    'Turn TLS on at the server (ssl_ca, ssl_cert, ssl_key), then set source.ssl.mode: verify-identity (or verify-ca) with source.ssl.ca.',
  );
}
