import { execFileSync } from 'node:child_process';

/**
 * A network namespace of the test's own, joined to this machine's by a veth pair, for running tidemark
 * behind a network that the test can cut. Inside it, 127.0.0.1 ports of the servers are sent over the
 * veth pair and handed to the same ports on this machine's loopback (NAT both sides, `route_localnet`),
 * so tidemark's config, and the addresses Kafka advertises, stay `127.0.0.1:<port>`.
 *
 * Faults are nftables rules inside the namespace: `partition` drops every packet of a port both ways
 * (a black hole: no reset, no refusal, as a cut cable or a firewall that drops), `loss` drops a share
 * of them at random. The kernel here has no `sch_netem`, so delay is not offered.
 */
export class NetNamespace {
  private constructor(
    readonly name: string,
    private readonly hostTable: string,
    private readonly ports: number[],
  ) {}

  static create(ports: number[]): NetNamespace {
    ensureNft();
    const n = nextIndex();
    const name = `tidemark-fault-${n}`;
    const [outer, inner] = [`tmfault${n}a`, `tmfault${n}b`];
    const [hostIp, nsIp] = [`10.213.${n}.1`, `10.213.${n}.2`];
    const hostTable = `tidemark_fault_${n}`;
    const set = ports.join(', ');
    // A namespace left behind by a killed run would hold the names.
    run('ip', ['netns', 'del', name], true);
    run('nft', ['delete', 'table', 'ip', hostTable], true);

    run('ip', ['netns', 'add', name]);
    run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    run('ip', ['link', 'set', inner, 'netns', name]);
    run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', outer]);
    run('ip', ['link', 'set', outer, 'up']);
    run('sysctl', ['-q', '-w', `net.ipv4.conf.${outer}.route_localnet=1`]);
    // The source address becomes 127.0.0.1 too, so the servers' accounts for local clients apply.
    nftScript(`table ip ${hostTable} {
      chain prerouting { type nat hook prerouting priority -100; iifname "${outer}" tcp dport { ${set} } dnat to 127.0.0.1; }
      chain input { type nat hook input priority 100; iifname "${outer}" snat to 127.0.0.1; }
    }`);

    const inNs = (cmd: string, args: string[]): void => run('ip', ['netns', 'exec', name, cmd, ...args]);
    inNs('ip', ['link', 'set', 'lo', 'up']);
    inNs('ip', ['addr', 'add', `${nsIp}/30`, 'dev', inner]);
    inNs('ip', ['link', 'set', inner, 'up']);
    inNs('sysctl', ['-q', '-w', 'net.ipv4.conf.all.route_localnet=1']);
    nftScript(
      `table ip tidemark {
        chain output { type nat hook output priority -100; ip daddr 127.0.0.1 tcp dport { ${set} } dnat to ${hostIp}; }
        chain postrouting { type nat hook postrouting priority 100; oifname "${inner}" masquerade; }
      }
      table inet faults {
        chain input { type filter hook input priority 0; }
        chain output { type filter hook output priority 0; }
      }`,
      name,
    );
    return new NetNamespace(name, hostTable, ports);
  }

  /** The command line that runs `argv` inside the namespace. */
  wrap(argv: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...argv];
  }

  /** Drops every packet to and from `port` (one of the namespace's server ports) until `heal`. */
  partition(port: number): void {
    this.rule(port, 'drop');
  }

  /** Drops about `percent` % of the packets to and from `port`, each packet at random, until `heal`. */
  loss(port: number, percent: number): void {
    this.rule(port, `numgen random mod 100 < ${percent} drop`);
  }

  /** Lifts every fault; connections that outlived it carry on where TCP left them. */
  heal(): void {
    nftScript('flush chain inet faults input\nflush chain inet faults output', this.name);
  }

  remove(): void {
    run('ip', ['netns', 'del', this.name], true);
    run('nft', ['delete', 'table', 'ip', this.hostTable], true);
  }

  private rule(port: number, verdict: string): void {
    if (!this.ports.includes(port)) throw new Error(`port ${port} is not routed through namespace ${this.name} (${this.ports.join(', ')})`);
    nftScript(`add rule inet faults output tcp dport ${port} ${verdict}\nadd rule inet faults input tcp sport ${port} ${verdict}`, this.name);
  }
}

let created = 0;

/** One /30 and one set of names per namespace of this process; the pid keeps concurrent runs apart. */
function nextIndex(): number {
  created += 1;
  return ((process.pid % 50) * 5 + created) % 250;
}

function run(cmd: string, args: string[], mayFail = false): void {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (!mayFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
}

function nftScript(script: string, netns?: string): void {
  const argv = netns ? ['ip', 'netns', 'exec', netns, 'nft', '-f', '-'] : ['nft', '-f', '-'];
  execFileSync(argv[0]!, argv.slice(1), { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** nftables is not on a fresh machine of this kind; Debian has it. */
function ensureNft(): void {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'nftables'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
}
