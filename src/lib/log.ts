// The daemon's event log: one line per event on stderr, readable text or JSON lines.
export type LogFormat = 'text' | 'json';
export type Logger = (event: string, fields?: Readonly<Record<string, unknown>>) => void;

function textValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

export function createLogger(format: LogFormat, stream: NodeJS.WritableStream = process.stderr): Logger {
  return (event, fields = {}) => {
    const time = new Date().toISOString();
    if (format === 'json') {
      stream.write(`${JSON.stringify({ time, event, ...fields })}\n`);
      return;
    }
    const rest = Object.entries(fields).map(([key, value]) => `${key}=${textValue(value)}`).join(' ');
    stream.write(`${time} ${event}${rest === '' ? '' : ` ${rest}`}\n`);
  };
}

export const silentLogger: Logger = () => undefined;
