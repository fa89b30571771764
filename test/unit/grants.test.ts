import { describe, expect, it } from 'vitest';
import { canSelect, hasReplicationClient, hasReplicationSlave, parseGrants } from '../../src/source/checks/grants.js';

// The grant parser sees the SHOW GRANTS text of both flavours; these are lines the servers print.
describe('SHOW GRANTS parsing', () => {
  const to = ' TO `cdc`@`%`';

  it('reads MySQL global privilege lists, static and dynamic', () => {
    const g = parseGrants(
      [`GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.*${to}`, `GRANT BINLOG_ADMIN,REPLICATION_SLAVE_ADMIN ON *.*${to}`],
      false,
    );
    expect(hasReplicationSlave(g)).toBe(true);
    expect(hasReplicationClient(g)).toBe(true);
    expect(canSelect(g, 'shop', 'orders')).toBe(true);
  });

  it('does not take REPLICATION SLAVE ADMIN (MariaDB) or REPLICATION_SLAVE_ADMIN (MySQL) for REPLICATION SLAVE', () => {
    expect(hasReplicationSlave(parseGrants([`GRANT REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.*${to}`], false))).toBe(false);
    expect(hasReplicationSlave(parseGrants([`GRANT REPLICATION_SLAVE_ADMIN ON *.*${to}`], false))).toBe(false);
  });

  it("takes MariaDB's BINLOG MONITOR for REPLICATION CLIENT, and ALL PRIVILEGES for everything", () => {
    expect(hasReplicationClient(parseGrants([`GRANT BINLOG MONITOR ON *.*${to}`], false))).toBe(true);
    const all = parseGrants(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED BY PASSWORD '*ABC' WITH GRANT OPTION"], false);
    expect(hasReplicationSlave(all) && hasReplicationClient(all) && canSelect(all, 'any', 'table')).toBe(true);
  });

  it('counts replication privileges only on *.*, and SELECT per database and table', () => {
    const g = parseGrants([`GRANT USAGE ON *.*${to}`, `GRANT ALL PRIVILEGES ON \`shop\`.*${to}`, `GRANT SELECT, INSERT ON \`crm\`.\`lead.s\`${to}`], false);
    expect(hasReplicationSlave(g)).toBe(false);
    expect(canSelect(g, 'shop', 'orders')).toBe(true);
    expect(canSelect(g, 'crm', 'lead.s')).toBe(true);
    expect(canSelect(g, 'crm', 'other')).toBe(false);
  });

  it('does not take a column-level SELECT for the table', () => {
    expect(canSelect(parseGrants([`GRANT SELECT (\`id\`, \`name\`) ON \`shop\`.\`orders\`${to}`], false), 'shop', 'orders')).toBe(false);
  });

  it('matches database grants as LIKE patterns, unless MySQL partial_revokes makes them literal', () => {
    const line = `GRANT SELECT ON \`app\\_db%\`.*${to}`;
    expect(canSelect(parseGrants([line], false), 'app_db1', 't')).toBe(true);
    expect(canSelect(parseGrants([line], false), 'appXdb1', 't')).toBe(false);
    expect(canSelect(parseGrants([line], true), 'app_db1', 't')).toBe(false);
  });

  it('applies MySQL partial revokes to global SELECT', () => {
    const g = parseGrants([`GRANT SELECT ON *.*${to}`, 'REVOKE SELECT ON `secret`.* FROM `cdc`@`%`'], true);
    expect(canSelect(g, 'secret', 't')).toBe(false);
    expect(canSelect(g, 'shop', 't')).toBe(true);
  });

  it('ignores role grants, whose privileges SHOW GRANTS lists on their own lines', () => {
    const g = parseGrants(['GRANT `cdc_role`@`%` TO `cdc`@`%`', 'GRANT `cdc_role` TO `cdc`@`%`', 'GRANT REPLICATION SLAVE ON *.* TO `cdc_role`'], false);
    expect(hasReplicationSlave(g)).toBe(true);
  });
});
