// An app shown in the browser: the sandbox gets its own X server (TigerVNC's Xvnc) on a private
// display, and its RFB stream is the launch's stdin/stdout, so it travels on the session's SSH
// channel like any other app's output. A fixed shell shim (arguments only through "$@") starts
// Xvnc on a Unix socket inside the sandbox's own /tmp, a small relay (perl, part of every Debian
// base system) between that socket and stdio, then the app on that display; whichever of the app
// and the viewer ends first ends the others.
import { existsSync } from 'node:fs';
import { EbpError } from '../lib/errors.js';

export interface VncDisplay {
  readonly kind: 'vnc';
  readonly width: number;
  readonly height: number;
}

/** What the person's side sends (SSH env request EBP_DISPLAY) to ask for a display in the page. */
export const DISPLAY_ENV = 'EBP_DISPLAY';

const MIN = 64;
const MAX = 8192;

/** Parses "vnc:WIDTHxHEIGHT". */
export function parseDisplayRequest(text: string): VncDisplay {
  const match = /^vnc:(\d{2,4})x(\d{2,4})$/.exec(text);
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (match === null || width < MIN || height < MIN || width > MAX || height > MAX) {
    throw new EbpError('USAGE', `display request "${text.slice(0, 32)}" is not vnc:WIDTHxHEIGHT (${MIN} to ${MAX} pixels)`);
  }
  return { kind: 'vnc', width, height };
}

export function displayRequestText(display: VncDisplay): string {
  return `vnc:${display.width}x${display.height}`;
}

/** stdio <-> the Xvnc socket; exits at EOF on either side. */
const RELAY = String.raw`
use strict; use warnings; use IO::Socket::UNIX; use IO::Select;
my $path = shift @ARGV; my $s;
for (1 .. 400) { $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) and last; select(undef, undef, undef, 0.025); }
die "ebp: the display server did not start\n" unless $s;
binmode STDIN; binmode STDOUT;
my $sel = IO::Select->new(\*STDIN, $s);
while (my @ready = $sel->can_read) {
  for my $in (@ready) {
    my $n = sysread($in, my $buf, 65536);
    exit 0 unless $n;
    my $out = $in == $s ? \*STDOUT : $s;
    my $off = 0;
    while ($off < $n) { my $w = syswrite($out, $buf, $n - $off, $off); exit 0 unless defined $w; $off += $w; }
  }
}`;

/**
 * The shim. $1 is the geometry, $2 the relay program, the rest the app's argv. The viewer's
 * stdin/stdout are kept on fds 3 and 4 for the relay only; Xvnc and the app never see them.
 */
const SHIM = [
  'set -u',
  'geometry=$1; relay=$2; shift 2',
  'sock=/tmp/.ebp-vnc',
  'exec 3<&0 4>&1 </dev/null >/dev/null',
  'Xvnc :1 -geometry "$geometry" -depth 24 -SecurityTypes None -rfbunixpath "$sock" -rfbunixmode 0600 -rfbport -1 -nolisten tcp -AcceptSetDesktopSize=1 -SendCutText=1 -AcceptCutText=1 2>/dev/null &',
  'xvnc=$!',
  'perl -e "$relay" "$sock" <&3 >&4 3<&- 4>&- &',
  'viewer=$!',
  'exec 3<&- 4>&-',
  'i=0; while [ ! -S /tmp/.X11-unix/X1 ] && [ $i -lt 400 ]; do sleep 0.025; i=$((i+1)); done',
  'DISPLAY=:1 "$@" &',
  'app=$!',
  'while kill -0 $app 2>/dev/null && kill -0 $viewer 2>/dev/null; do sleep 0.2; done',
  'status=0; if ! kill -0 $app 2>/dev/null; then wait $app; status=$?; fi',
  'kill $app $viewer $xvnc 2>/dev/null; wait',
  'exit $status',
].join('\n');

/** The programs the shim needs on this host (the sandbox sees the host's /usr). */
export function vncProblem(): string | undefined {
  for (const program of ['/usr/bin/Xvnc', '/usr/bin/perl']) if (!existsSync(program)) return program;
  return undefined;
}

/** The sandbox command that runs `argv` on its own VNC display. */
export function vncLaunchArgv(argv: readonly string[], display: VncDisplay): string[] {
  if (argv.length === 0) throw new EbpError('USAGE', 'no command for the display');
  const missing = vncProblem();
  if (missing !== undefined) {
    throw new EbpError('SANDBOX_UNSUPPORTED', `this host cannot show apps in a browser: ${missing} is missing`, { hint: 'the host\'s owner installs tigervnc-standalone-server (Xvnc) and perl' });
  }
  return ['/bin/sh', '-c', SHIM, 'ebp-vnc', `${display.width}x${display.height}`, RELAY, ...argv];
}
