import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';
import { type Config, configSchema, describeIssue, isSecretPath } from './schema.js';
import { readTlsFiles } from './tls-files.js';

export type { Config } from './schema.js';
export { matchTables } from './schema.js';

type KeyPath = readonly PropertyKey[];

function formatPath(path: KeyPath): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((k, i) => {
      if (typeof k === 'number') return `[${k}]`;
      const key = String(k);
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return i === 0 ? key : `.${key}`;
      return `[${JSON.stringify(key)}]`;
    })
    .join('');
}

interface Problem {
  path: KeyPath;
  message: string;
}

const REFERENCE = /(\$?)\$\{([^}]*)(\}?)/g;
const REFERENCE_BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/**
 * Replaces ${NAME} and ${NAME:-default} in every string value. As in the shell, the default also applies when the
 * variable is set but empty. $${...} stays a literal ${...}. Substituted text is not scanned again.
 */
function substitute(value: unknown, path: KeyPath, env: NodeJS.ProcessEnv, problems: Problem[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i], env, problems));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, [...path, k], env, problems)]));
  }
  if (typeof value !== 'string') return value;
  return value.replace(REFERENCE, (match: string, escaped: string, body: string, close: string) => {
    if (escaped) return match.slice(1);
    const fail = (message: string): string => {
      problems.push({ path, message });
      return match;
    };
    if (!close) return fail('unterminated "${" (write "$${" for a literal "${")');
    const ref = REFERENCE_BODY.exec(body);
    if (!ref || ref[2]?.includes('${')) {
      // The text around a bad reference in a password is most of the password.
      const what = isSecretPath(path) ? 'an invalid reference' : `invalid reference "\${${body}}"`;
      return fail(`${what} (expected \${NAME} or \${NAME:-default}; write "$\${" for a literal "\${")`);
    }
    const [, name = '', fallback] = ref;
    const set = env[name];
    if (fallback !== undefined && !set) return fallback;
    if (set === undefined) return fail(`environment variable ${name} is not set`);
    return set;
  });
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file not found: ${file}`);
    throw new ConfigError(`cannot read config file ${file}: ${code === 'EISDIR' ? 'it is a directory' : (err as Error).message}`);
  }
  const lineCounter = new LineCounter();
  // Not prettyErrors: those quote the offending source line, which may hold a password.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const invalid = (problems: string[]): ConfigError => new ConfigError(`invalid YAML in config file ${file}:`, problems);
  if (doc.errors.length > 0) {
    throw invalid(
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return `line ${line}, column ${col}: ${e.message}`;
      }),
    );
  }
  try {
    return doc.toJS();
  } catch (err) {
    // Alias expansion beyond yaml's limit (a "billion laughs" document) is the one way to get here.
    throw invalid([(err as Error).message]);
  }
}

/**
 * Reads, substitutes and validates the config file, reporting every problem at once as a ConfigError.
 * `env` supplies ${VAR} values (default: process.env).
 */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const configPath = resolve(path);
  const raw = readYaml(configPath);
  if (raw === null || raw === undefined) throw new ConfigError(`invalid config file ${configPath}:`, ['the file is empty']);

  const envProblems: Problem[] = [];
  const data = substitute(raw, [], env, envProblems);
  const result = configSchema.safeParse(data, { error: describeIssue });

  const problems = [...envProblems];
  for (const issue of result.error?.issues ?? []) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: [...issue.path, key], message: issue.message });
    } else if (!envProblems.some((p) => samePath(p.path, issue.path))) {
      // A value whose substitution failed is reported once, as the missing variable, not again as a bad value.
      problems.push({ path: issue.path, message: issue.message });
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(
      `invalid config file ${configPath}:`,
      problems.map((p) => `${formatPath(p.path)}: ${p.message}`),
    );
  }

  // Relative paths are taken from the config file's directory, not the working directory, so the daemon
  // finds the same checkpoint and output whether systemd starts it from / or someone runs it by hand.
  const dir = dirname(configPath);
  const { sink } = result.data;
  const tls = readTlsFiles(result.data.source.ssl, dir);
  if (tls.problems.length > 0) throw new ConfigError(`invalid config file ${configPath}:`, tls.problems);
  return {
    ...result.data,
    configPath,
    source: { ...result.data.source, ssl: tls.ssl },
    checkpoint: { path: resolve(dir, result.data.checkpoint.path) },
    sink: sink.type === 'jsonl' ? { ...sink, path: resolve(dir, sink.path) } : sink,
  };
}

const samePath = (a: KeyPath, b: KeyPath): boolean => a.length === b.length && a.every((k, i) => k === b[i]);

/**
 * The replica server ids this connector uses: `first` up to `first + size - 1`, one per binlog connection
 * (the tailer, plus one per chunk backfilled concurrently). Each connection needs its own id because when a
 * replica connects with a server id that is already connected, MySQL drops the older connection, and the
 * events that connection was reading are silently lost.
 */
export function serverIdRange(config: Config): { first: number; size: number } {
  return { first: config.source.serverId, size: config.snapshot.parallelism + 1 };
}
