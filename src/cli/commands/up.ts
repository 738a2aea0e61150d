// `ebp up`: run the daemon in the foreground until SIGINT/SIGTERM.
import { EbpError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { missingNodeFlags } from '../../daemon/node-flags.js';
import { flag, integerOption, listOption, stringOption } from '../args.js';
import type { Command } from '../command.js';

/** EBP_DISCOVERY_TTL: short record lifetimes for tests and demos (seconds, 1..4500). */
function discoveryTtl(text: string | undefined): { discoveryTtlSeconds?: number } {
  if (text === undefined) return {};
  const seconds = Number(text);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 4500) throw new EbpError('USAGE', `EBP_DISCOVERY_TTL must be whole seconds from 1 to 4500 (got "${text}")`);
  return { discoveryTtlSeconds: seconds };
}

export const upCommand: Command = {
  name: 'up',
  summary: 'run the daemon: share this machine\'s apps with peers',
  usage: 'ebp up [--name NAME] [--port N] [--listen ADDR] [--config FILE] [--no-discovery] [--interface IFACE]... [--ui-port N | --no-ui] [--log-format text|json]',
  description: `
Runs the eBrainPool daemon in the foreground. It announces itself and browses for peers with
DNS-SD (mDNS, _ebrainpool._tcp) on every multicast interface, or only on --interface ones (when
it listens on loopback only, discovery needs --interface). It shares this machine's applications over SSH
(public-key authentication only; every launch in a fresh sandbox), answers the local CLI on a
Unix socket in its runtime folder, and keeps connections to peers open for fast launches.
It serves the pool as a web page on 127.0.0.1 only (port 20102 by default, [ui] in the config);
the page needs a secret token: open it with \`ebp ui\`. When the daemon has an X display
(DISPLAY when it starts, or [ui] display), the page can also open GUI apps on that display (X11
forwarding with an untrusted cookie).
Logs one line per event on stderr. SIGINT or SIGTERM end every running session cleanly, then
the daemon.

On first start it makes this machine's Ed25519 identity (see \`ebp id\`). The configuration is
read from FILE or from config.toml in the configuration folder; a bad key or value is an error
that names it.`,
  options: {
    name: { type: 'string', value: 'NAME', description: 'display name (default: from the config, else user@hostname)' },
    port: { type: 'string', value: 'N', description: 'SSH port (default 20101; 0 picks a free one and says which)' },
    listen: { type: 'string', value: 'ADDR', description: 'listen only on this address (default: all)' },
    config: { type: 'string', value: 'FILE', description: 'configuration file (TOML)' },
    'log-format': { type: 'string', value: 'FORMAT', description: 'text (default) or json' },
    'no-discovery': { type: 'boolean', description: 'neither announce nor browse with DNS-SD (static peers still work)' },
    interface: { type: 'string', value: 'IFACE', multiple: true, description: 'announce and browse only on this interface' },
    'ui-port': { type: 'string', value: 'N', description: 'serve the web page on 127.0.0.1:N (default 20102 or the config\'s; 0 picks a free one)' },
    'no-ui': { type: 'boolean', description: 'no web page' },
  },
  async run({ args, paths }) {
    const format = stringOption(args, 'log-format') ?? 'text';
    if (format !== 'text' && format !== 'json') throw new EbpError('USAGE', `--log-format must be text or json (got "${format}")`);
    const log = createLogger(format);
    const port = integerOption(args, 'port', { min: 0, max: 65535 });
    const name = stringOption(args, 'name');
    const listen = stringOption(args, 'listen');
    const config = stringOption(args, 'config');
    const interfaces = listOption(args, 'interface');
    const uiPort = integerOption(args, 'ui-port', { min: 0, max: 65535 });
    if (uiPort !== undefined && flag(args, 'no-ui')) throw new EbpError('USAGE', '--ui-port and --no-ui contradict each other');
    const { Daemon } = await import('../../daemon/daemon.js');
    const daemon = await Daemon.start({
      paths, log,
      ...(port === undefined ? {} : { port }),
      ...(name === undefined ? {} : { name }),
      ...(listen === undefined ? {} : { host: listen }),
      ...(config === undefined ? {} : { configFile: config }),
      ...(flag(args, 'no-discovery') ? { noDiscovery: true } : {}),
      ...(interfaces.length === 0 ? {} : { interfaces }),
      ...(flag(args, 'no-ui') ? { ui: false as const } : uiPort === undefined ? {} : { ui: { port: uiPort } }),
      ...discoveryTtl(process.env['EBP_DISCOVERY_TTL']),
    });
    const missing = missingNodeFlags();
    if (missing.length > 0) log('node-flags-missing', { flags: missing.join(' '), effect: 'bulk transfers may take up to twice the CPU', fix: `start it as npm start and the systemd unit do: node ${missing.join(' ')} ${process.argv[1] ?? 'bin/ebp'} up` });
    process.stdout.write(`ebp: sharing ${daemon.catalog.apps.length} apps as "${daemon.name}" on port ${daemon.port} (${daemon.identity.fingerprint})\n`);
    if (daemon.uiPort !== undefined) process.stdout.write(`ebp: the web page is on 127.0.0.1 port ${daemon.uiPort} (open it with \`ebp ui\`)\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        log('signal', { signal });
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void daemon.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
