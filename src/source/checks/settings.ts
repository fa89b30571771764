import { type CheckResult, type Flavour, fail, pass, type Source, warn } from './types.js';

/**
 * The fix for a setting: MySQL's SET PERSIST survives a restart; MariaDB has no PERSIST, so the config file
 * has to be changed as well.
 */
export function setVariable(flavour: Flavour, name: string, value: string, perSession = false): string {
  const sql = /^(\d+|ON|OFF)$/.test(value) ? value : `'${value}'`;
  const statement =
    flavour === 'mysql' ? `SET PERSIST ${name} = ${sql};` : `SET GLOBAL ${name} = ${sql}; and put ${name}=${value} under [mysqld] in the server config.`;
  // These are session variables: a client's session copy is taken when it connects.
  return perSession ? `${statement} Connections already open keep the old value until they reconnect.` : statement;
}

export function settingChecks(s: Source): CheckResult[] {
  const { flavour, vars: v } = s;
  const out = [checkVersion(flavour, v.version ?? '')];

  out.push(
    v.log_bin === 'ON'
      ? pass('log_bin', 'ON')
      : fail(
          'log_bin',
          `${v.log_bin ?? 'not set'}: the server writes no binary log, so there are no changes to follow`,
          `Add log_bin=binlog and a unique server_id under [mysqld] in the server config and restart the server (log_bin cannot be turned on at runtime).`,
        ),
  );

  out.push(
    v.binlog_format === 'ROW'
      ? pass('binlog_format', 'ROW')
      : fail(
          'binlog_format',
          `${v.binlog_format ?? 'not set'}: changes are logged (at least partly) as statements, and tidemark reads row changes`,
          setVariable(flavour, 'binlog_format', 'ROW', true),
        ),
  );

  out.push(
    v.binlog_row_image === 'FULL'
      ? pass('binlog_row_image', 'FULL')
      : fail(
          'binlog_row_image',
          `${v.binlog_row_image ?? 'not set'}: updates and deletes log only some columns, and tidemark needs whole before and after rows`,
          setVariable(flavour, 'binlog_row_image', 'FULL', true),
        ),
  );

  out.push(
    v.binlog_row_metadata === 'FULL'
      ? pass('binlog_row_metadata', 'FULL')
      : warn(
          'binlog_row_metadata',
          `${v.binlog_row_metadata ?? 'not supported by this server'}: row events carry no column names, so rows are decoded with the table's ` +
            'current column list; a stream behind an ALTER TABLE may then put values under the wrong columns',
          setVariable(flavour, 'binlog_row_metadata', 'FULL'),
        ),
  );

  if (flavour === 'mariadb') {
    out.push(pass('gtid_mode', 'MariaDB: GTIDs are always on; the stream resumes by GTID position'));
  } else if (v.gtid_mode === 'ON') {
    out.push(pass('gtid_mode', 'ON: the stream resumes by GTID set, which also survives a failover to another server'));
  } else {
    // sync refuses such a server unless the config accepts the race; check says what sync will do.
    out.push(
      (s.config.source.allowWithoutGtid ? warn : fail)(
        'gtid_mode',
        `${v.gtid_mode ?? 'not set'}: the stream resumes by binlog file/position only, which is meaningless on any other server (no failover), ` +
          'and a chunk read while a transaction is being committed can miss that transaction (the low watermark race; see README Limits)' +
          (s.config.source.allowWithoutGtid ? '; accepted by source.allowWithoutGtid' : '; sync refuses to run unless source.allowWithoutGtid: true'),
        'SET PERSIST enforce_gtid_consistency = ON; SET PERSIST gtid_mode = OFF_PERMISSIVE; SET PERSIST gtid_mode = ON_PERMISSIVE; ' +
          "then, once SHOW STATUS LIKE 'Ongoing_anonymous_transaction_count' shows 0, SET PERSIST gtid_mode = ON;",
      ),
    );
  }

  const compression = v.binlog_transaction_compression;
  out.push(
    compression === 'ON'
      ? fail(
          'binlog_transaction_compression',
          'ON: transactions are logged as compressed payloads, which tidemark cannot decode',
          setVariable(flavour, 'binlog_transaction_compression', 'OFF', true),
        )
      : pass('binlog_transaction_compression', compression ?? 'not available on this server (nothing to turn off)'),
  );

  const valueOptions = v.binlog_row_value_options;
  out.push(
    valueOptions !== null && /PARTIAL_JSON/i.test(valueOptions)
      ? fail(
          'binlog_row_value_options',
          `${valueOptions}: JSON updates are logged as partial diffs, which tidemark cannot decode`,
          setVariable(flavour, 'binlog_row_value_options', '', true),
        )
      : pass(
          'binlog_row_value_options',
          valueOptions === null ? 'not available on this server (nothing to turn off)' : valueOptions === '' ? "'' (full JSON values)" : valueOptions,
        ),
  );
  return out;
}

const MINIMUM: Record<Flavour, { label: string; version: [number, number] }> = {
  mysql: { label: 'MySQL', version: [8, 0] },
  mariadb: { label: 'MariaDB', version: [10, 6] },
};

function checkVersion(flavour: Flavour, version: string): CheckResult {
  const {
    label,
    version: [minMajor, minMinor],
  } = MINIMUM[flavour];
  const found = `${label} ${version}`;
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return warn('server', `${found}: version not recognised`, 'Use MySQL 8.0+ or MariaDB 10.6+, the versions tidemark supports.');
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major > minMajor || (major === minMajor && minor >= minMinor)) return pass('server', found);
  return fail('server', `${found}: too old`, `Upgrade the server to ${label} ${minMajor}.${minMinor} or newer.`);
}
