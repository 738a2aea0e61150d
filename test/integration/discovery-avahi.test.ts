// Interoperability with avahi-daemon, the mDNS responder of most Linux desktops, in network
// namespaces: each avahi-daemon runs with a private system D-Bus (dbus-daemon on a unix socket in
// a temporary folder) and a private /run (its own mount namespace), limited to the test veth.
//
//   h1: avahi-daemon "ebpt-avahi-a" + avahi-publish: "Hand Made" (no TXT), "With Txt" (our fields),
//       "Dotted.Name v2.0" (a dot inside the instance label)
//   h2: our discovery "Ours B"
//   h3: our discovery "Ours C" started first, then avahi-daemon "ebpt-avahi-c" sharing UDP 5353
//       in the same namespace, publishing "Avahi C"
//
// (a) h2 lists avahi's services, "Hand Made" unverified, "With Txt" verified;
// (b) avahi-browse in h1 resolves "Ours B" with our TXT fields;
// (c) in h3 both responders keep working: h2 sees "Ours C" and "Avahi C", h3's discovery sees
//     "Avahi C" and "Hand Made", avahi-browse in h3 and in h1 resolve "Ours C".
//
// Needs avahi-daemon, avahi-utils and dbus (Debian packages). When missing, the test installs
// them with apt-get only where apt cannot start system services (policy-rc.d refuses), so no
// avahi-daemon ever runs on the machine's real interfaces; otherwise it skips, saying why.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { type DiscoveryNode, Lab, type LabHost, netnsSkipReason, type PeerInfo, testTxt } from './helpers/netns.js';

const TOOLS = ['avahi-daemon', 'avahi-publish', 'avahi-browse', 'dbus-daemon', 'unshare'];

function missingTools(): string[] {
  return TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
}

function avahiSkipReason(): string | undefined {
  const netns = netnsSkipReason();
  if (netns !== undefined) return netns;
  if (missingTools().length === 0) return undefined;
  const policy = spawnSync('/usr/sbin/policy-rc.d', [], { encoding: 'utf8' });
  if (policy.status !== 101) {
    return `needs ${missingTools().join(', ')}: apt-get install -y avahi-daemon avahi-utils dbus (not installed by the test here: apt might start avahi-daemon on the real network)`;
  }
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'avahi-daemon', 'avahi-utils', 'dbus'], {
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (install.status !== 0 || missingTools().length > 0) {
    return `avahi-daemon, avahi-utils and dbus could not be installed: ${(install.stderr || install.stdout || String(install.error)).trim().slice(-300)}`;
  }
  return undefined;
}

const SKIP = avahiSkipReason();

/** avahi-daemon with a private D-Bus inside one lab host. */
class Avahi {
  readonly dir = mkdtempSync(join(tmpdir(), 'ebpt-avahi-'));
  readonly env: NodeJS.ProcessEnv;
  log = '';
  private readonly children: ChildProcess[] = [];

  constructor(
    private readonly lab: Lab,
    readonly host: LabHost,
    readonly hostName: string,
  ) {
    this.env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(this.dir, 'bus')}` };
    writeFileSync(
      join(this.dir, 'dbus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${join(this.dir, 'bus')}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    writeFileSync(
      join(this.dir, 'avahi-daemon.conf'),
      `[server]
host-name=${hostName}
use-ipv4=yes
use-ipv6=yes
allow-interfaces=${host.ifname}
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-workstation=no
publish-hinfo=no
[reflector]
enable-reflector=no
`,
    );
  }

  async start(): Promise<void> {
    const bus = this.lab.spawn(this.host.ns, 'dbus-daemon', [`--config-file=${join(this.dir, 'dbus.conf')}`, '--nofork', '--nopidfile'], { env: this.env });
    this.children.push(bus);
    bus.stderr?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    for (let i = 0; i < 50 && spawnSync('test', ['-S', join(this.dir, 'bus')]).status !== 0; i += 1) await delay(50);
    // A private mount namespace with its own /run: avahi-daemon's pid file and socket live there.
    const daemon = this.lab.spawn(
      this.host.ns,
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs /run && mkdir -p /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f ${join(this.dir, 'avahi-daemon.conf')}`,
      ],
      { env: this.env },
    );
    this.children.push(daemon);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`avahi-daemon did not start: ${this.log}`)); }, 15_000);
      const check = (chunk: Buffer): void => {
        this.log += chunk.toString();
        if (this.log.includes('Server startup complete')) {
          clearTimeout(timer);
          resolve();
        }
      };
      daemon.stderr?.on('data', check);
      daemon.stdout?.on('data', check);
      daemon.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`avahi-daemon exited (${String(code)}): ${this.log}`));
      });
    });
  }

  /** avahi-publish -s NAME TYPE PORT [TXT...]; resolves once avahi has established the name. */
  async publish(name: string, port: number, txt: readonly string[] = []): Promise<ChildProcess> {
    const child = this.lab.spawn(this.host.ns, 'avahi-publish', ['-s', name, '_ebrainpool._tcp', String(port), ...txt], { env: this.env });
    this.children.push(child);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`avahi-publish ${name}: ${output}`)); }, 10_000);
      const check = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Established under name')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
    });
    return child;
  }

  /** Resolved entries of `avahi-browse -rpt _ebrainpool._tcp` (name → {address, port, txt}). */
  browse(): Map<string, { address: string; port: number; txt: string[]; family: string }[]> {
    const result = this.lab.exec(this.host.ns, 'env', [`DBUS_SYSTEM_BUS_ADDRESS=${this.env['DBUS_SYSTEM_BUS_ADDRESS'] ?? ''}`, 'avahi-browse', '-rpt', '_ebrainpool._tcp']);
    const out = new Map<string, { address: string; port: number; txt: string[]; family: string }[]>();
    for (const line of result.stdout.split('\n')) {
      const fields = line.split(';');
      if (fields[0] !== '=' || fields.length < 10) continue;
      const name = (fields[3] ?? '').replace(/\\(\d{3})/g, (_, code: string) => String.fromCharCode(Number(code)));
      const txt = [...(fields.slice(9).join(';').matchAll(/"((?:[^"\\]|\\.)*)"/g))].map((match) => match[1] ?? '');
      const list = out.get(name) ?? [];
      list.push({ family: fields[2] ?? '', address: fields[7] ?? '', port: Number(fields[8]), txt });
      out.set(name, list);
    }
    return out;
  }

  /** Retries browse until `name` is resolved (avahi needs its own queries to go round). */
  async resolved(name: string, timeoutMs = 15_000): Promise<{ address: string; port: number; txt: string[]; family: string }[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const entries = this.browse().get(name);
      if (entries !== undefined && entries.length > 0) return entries;
      if (Date.now() > until) throw new Error(`avahi in ${this.host.ns} never resolved "${name}"; saw: ${JSON.stringify([...this.browse().keys()])}; log: ${this.log.slice(-2000)}`);
      await delay(250);
    }
  }

  stop(): void {
    for (const child of this.children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('discovery next to avahi-daemon', { skip: SKIP }, () => {
  let lab: Lab;
  let avahiA: Avahi;
  let avahiC: Avahi;
  let ourB: DiscoveryNode;
  let ourC: DiscoveryNode;

  before(async () => {
    lab = new Lab();
    const [h1, h2, h3] = [lab.addHost(), lab.addHost(), lab.addHost()];
    await Promise.all([h1, h2, h3].map((host) => lab.linkLocalReady(host)));
    avahiA = new Avahi(lab, h1, 'ebpt-avahi-a');
    await avahiA.start();
    await avahiA.publish('Hand Made', 20101);
    await avahiA.publish('Dotted.Name v2.0', 20103);
    await avahiA.publish('With Txt', 20102, ['v=1', `id=${String(testTxt('avahi')['id'])}`, 'apps=2', 'cat=0011', 'load=1/4']);
    ourB = lab.node(h2, { name: 'Ours B', port: 20110, txt: testTxt('ours-b') });
    // h3: ours first, then avahi-daemon binds UDP 5353 in the same namespace.
    ourC = lab.node(h3, { name: 'Ours C', port: 20120, txt: testTxt('ours-c') });
    await Promise.all([ourB.ready(), ourC.ready()]);
    avahiC = new Avahi(lab, h3, 'ebpt-avahi-c');
    await avahiC.start();
    await avahiC.publish('Avahi C', 20130, ['note=same namespace']);
  });

  after(async () => {
    avahiA.stop();
    avahiC.stop();
    await lab.destroy();
    avahiA.cleanup();
    avahiC.cleanup();
  });

  it('(a) lists a service published by avahi-publish: without TXT unverified, with our TXT verified', async () => {
    const hand = await ourB.until('Hand Made', () => ourB.peers.get('Hand Made'), 10_000);
    assert.equal(hand.verified, false);
    assert.equal(hand.port, 20101);
    assert.equal(hand.host, 'ebpt-avahi-a.local');
    assert.ok(hand.addresses.includes(avahiA.host.address), JSON.stringify(hand.addresses));
    assert.deepEqual(hand.txt.raw, {});
    const withTxt = await ourB.until('With Txt', () => ourB.peers.get('With Txt'), 10_000);
    assert.equal(withTxt.verified, true);
    assert.equal(withTxt.txt['apps'], 2);
    assert.equal(withTxt.txt['load'], '1/4');
    assert.equal(withTxt.txt['id'], testTxt('avahi')['id']);
    // Dots inside an instance label stay part of the name.
    const dotted = await ourB.until('Dotted.Name v2.0', () => ourB.peers.get('Dotted.Name v2.0'), 10_000);
    assert.equal(dotted.port, 20103);
    assert.equal(dotted.key, 'dotted.name v2.0@eth0');
  });

  it('(b) avahi-browse resolves our service with our TXT fields', async () => {
    const entries = await avahiA.resolved('Ours B');
    const v4 = entries.find((entry) => entry.address === ourB.host.address);
    assert.ok(v4 !== undefined, JSON.stringify(entries));
    assert.equal(v4.port, 20110);
    const txt = new Set(v4.txt);
    for (const field of ['v=1', `id=${String(testTxt('ours-b')['id'])}`, 'apps=3', 'cat=00112233aabbccdd', 'load=0/8']) {
      assert.ok(txt.has(field), `${field} missing from ${JSON.stringify(v4.txt)}`);
    }
  });

  it('(c) with avahi-daemon in the same namespace both publish and browse', async () => {
    // A third namespace sees both responders of h3.
    await ourB.until('Ours C and Avahi C', () => ourB.peers.get('Ours C')?.verified === true && ourB.peers.has('Avahi C'), 10_000);
    const avahiService = ourB.peers.get('Avahi C') as PeerInfo;
    assert.equal(avahiService.port, 20130);
    assert.equal(avahiService.txt.raw['note'], 'same namespace');
    // Ours in h3 sees avahi's service next to it, and the others.
    await ourC.until('Avahi C, Hand Made, Ours B', () => ourC.peers.has('Avahi C') && ourC.peers.has('Hand Made') && ourC.peers.has('Ours B'), 10_000);
    assert.equal(ourC.peers.has('Ours C'), false);
    // avahi next to us and avahi elsewhere resolve ours.
    const local = await avahiC.resolved('Ours C');
    assert.ok(local.some((entry) => entry.port === 20120 && entry.txt.includes('v=1')), JSON.stringify(local));
    const remote = await avahiA.resolved('Ours C');
    assert.ok(remote.some((entry) => entry.address === ourC.host.address && entry.port === 20120), JSON.stringify(remote));
    // Nobody renamed anything: no conflicts between the two responders sharing the host.
    assert.equal(ourC.instance(), 'Ours C');
    assert.ok(!avahiC.log.includes('collision') && !avahiC.log.includes('Host name conflict'), avahiC.log);
    const stats = (await ourC.stats())['stats'] as { conflicts: number; errors: number };
    assert.equal(stats.conflicts, 0);
    assert.equal(stats.errors, 0);
  });
});
