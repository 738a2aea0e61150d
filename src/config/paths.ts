// Where ebp keeps things: state (keys, trust, audit log), configuration, and runtime sockets.
// Follows the XDG base directories for users and /var/lib, /etc, /run for the system daemon.
import { join, resolve } from 'node:path';

export interface StatePaths {
  readonly stateDir: string;
  readonly configDir: string;
  readonly runtimeDir: string;
}

export function statePaths(options: { stateDir?: string | undefined; env?: NodeJS.ProcessEnv; uid?: number } = {}): StatePaths {
  const env = options.env ?? process.env;
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const explicit = options.stateDir ?? env['EBP_STATE_DIR'];
  if (explicit !== undefined && explicit !== '') {
    const stateDir = resolve(explicit);
    // One folder holds everything when the state dir is given: several daemons on one machine
    // (tests, the demo) stay apart.
    return { stateDir, configDir: join(stateDir, 'config'), runtimeDir: join(stateDir, 'run') };
  }
  if (uid === 0) return { stateDir: '/var/lib/ebp', configDir: '/etc/ebp', runtimeDir: '/run/ebp' };
  // os.homedir() is $HOME when set: node:os (a fifth of a millisecond of every command's start)
  // is loaded only when it is not.
  const home = env['HOME'] ?? process.getBuiltinModule('node:os').homedir();
  const xdg = (name: string, fallback: string): string => {
    const value = env[name];
    return value !== undefined && value.startsWith('/') ? value : join(home, fallback);
  };
  const runtime = env['XDG_RUNTIME_DIR'];
  const stateDir = join(xdg('XDG_STATE_HOME', '.local/state'), 'ebp');
  return {
    stateDir,
    configDir: join(xdg('XDG_CONFIG_HOME', '.config'), 'ebp'),
    runtimeDir: runtime !== undefined && runtime.startsWith('/') ? join(runtime, 'ebp') : join(stateDir, 'run'),
  };
}
