import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonl } from '../support/consistency.js';
import { freshDatabase, urlOf } from '../support/db.js';
import { sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/**
 * The environment of a user's shell on a machine without the repository: npm's variables from the
 * `npm test` around this run (the project's name, prefixes, lifecycle) would otherwise steer the
 * install. The cache and nodedir stay, since they say where this machine keeps things. The Node
 * running this test comes first on PATH, so the installed command runs on it (scripts/test-node.sh).
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const kept = ['npm_config_cache', 'npm_config_nodedir'];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || kept.includes(k)));
  delete env.INIT_CWD;
  return { ...env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, ...extra };
}

/**
 * better-sqlite3 is built from source when no prebuilt binary can be downloaded, which takes over a
 * minute here. By default the test hands its install script the binary the repository's own install
 * built (same version, same Node ABI) as a local prebuilt, so the script still runs but skips the
 * compiler; TIDEMARK_TEST_PACKAGE_FROM_SOURCE=1 leaves it out and lets it compile.
 */
async function localPrebuilds(work: string): Promise<Record<string, string>> {
  if (process.env.TIDEMARK_TEST_PACKAGE_FROM_SOURCE === '1') return {};
  const module = join(ROOT, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(module, 'package.json'), 'utf8')) as { version: string };
  if (!existsSync(join(module, 'build/Release/better_sqlite3.node'))) return {};
  const dir = join(work, 'prebuilds');
  mkdirSync(dir);
  // prebuild-install's file name for glibc Linux; on any other platform the name does not match and it compiles.
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await run('tar', ['-czf', join(dir, name), '-C', module, 'build/Release/better_sqlite3.node']);
  return { npm_config_better_sqlite3_local_prebuilds: dir };
}

describe('the npm package', () => {
  const work = tempDir('tidemark-package-');
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('packs only what a user needs, installs into an empty prefix, and its tidemark command runs', async () => {
    // The global setup has just built dist/ from the sources under test, so packing needs no build of its own.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, env: userEnv() });
    const [tarball] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const files = tarball!.files.map((f) => f.path);
    for (const f of [
      'LICENSE',
      'README.md',
      'bin/tidemark',
      'dist/cli/main.js',
      'config/jsonl.example.yaml',
      'config/kafka.example.yaml',
      'config/postgres.example.yaml',
      'config/tidemark.service',
    ]) {
      expect(files).toContain(f);
    }
    // The demo starts a local MySQL through this script when no server is given.
    expect(files).toContain('scripts/test-servers.sh');
    expect(files.filter((f) => /^(src|test|bench|node_modules)\/|\.map$|\.tsbuildinfo$/.test(f))).toEqual([]);

    // Installed from an empty folder, as on a machine that has only the tarball.
    const home = join(work, 'home');
    mkdirSync(home);
    const prefix = join(work, 'prefix');
    const env = userEnv(await localPrebuilds(work));
    await run(
      'npm',
      [
        'install',
        '--global',
        '--prefix',
        prefix,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--allow-scripts=better-sqlite3',
        join(work, tarball!.filename),
      ],
      { cwd: home, env, maxBuffer: 64 << 20 },
    );
    const bin = join(prefix, 'bin', 'tidemark');
    const tidemark = (args: string[], extra: Record<string, string> = {}) =>
      run(bin, args, { cwd: home, env: userEnv(extra), maxBuffer: 64 << 20 }).catch((err: { code: number; stdout: string; stderr: string }) => {
        throw new Error(`tidemark ${args.join(' ')} exited ${err.code}:\n${err.stdout}\n${err.stderr}`);
      });

    expect((await tidemark(['--version'])).stdout.trim()).toBe(pkg.version);
    const help = (await tidemark(['--help'])).stdout;
    for (const command of ['sync', 'snapshot', 'check', 'status', 'reset', 'demo']) expect(help).toMatch(new RegExp(`^ {2}${command}\\b`, 'm'));

    const { db, conn } = await freshDatabase(urlOf('mysql'), 'pkg');
    try {
      await conn.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL)');
      await conn.query('INSERT INTO items VALUES ?', [Array.from({ length: 50 }, (_, i) => [i + 1, `item ${i + 1}`])]);
      const out = join(home, 'out.jsonl');
      const config = writeConfig(home, {
        name: 'package-test',
        source: { ...sourceFromUrl(urlOf('mysql')), serverId: 7900, tables: [`${db}.items`] },
        checkpoint: { path: join(home, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: out },
      });
      expect((await tidemark(['check', '-c', config])).stdout).toMatch(/PASS/);
      await tidemark(['sync', '-c', config, '--until-caught-up']);
      const reads = readJsonl(out).filter((l) => l.value?.op === 'r');
      expect(reads.map((l) => l.key)).toEqual(Array.from({ length: 50 }, (_, i) => ({ id: i + 1 })));
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }

    // The demo writes under the temporary directory, says where, and leaves the working directory alone.
    const demoTmp = join(work, 'tmp');
    const demoCwd = join(work, 'demo-cwd');
    mkdirSync(demoTmp);
    mkdirSync(demoCwd);
    const demo = await run(bin, ['demo', '--seconds', '1'], { cwd: demoCwd, env: userEnv({ TIDEMARK_TEST_MYSQL_URL: urlOf('mysql'), TMPDIR: demoTmp }) });
    const [demoDir] = readdirSync(demoTmp);
    expect(demoDir).toMatch(/^tidemark-demo-/);
    expect(demo.stdout).toContain(`the demo's checkpoint and output go to ${join(demoTmp, demoDir!)}`);
    expect(existsSync(join(demoTmp, demoDir!, 'out.jsonl'))).toBe(true);
    expect(readdirSync(demoCwd)).toEqual([]);
  });
});
