// Small DOM helpers: elements are built with textContent, never from HTML strings, so nothing a
// peer announces (names, descriptions) can become markup or script.

type Attrs = Readonly<Record<string, string | boolean | undefined>>;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function byId(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`#${id} missing`);
  return node;
}

export function inputById(id: string): HTMLInputElement {
  const node = byId(id);
  if (!(node instanceof HTMLInputElement)) throw new Error(`#${id} is not an input`);
  return node;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit] ?? 'GiB'}`;
}

/** "SHA256:abcd…wxyz": enough to compare by eye, short enough to read. */
export function shortFingerprint(fingerprint: string): string {
  const body = fingerprint.replace(/^SHA256:/, '');
  return body.length <= 12 ? fingerprint : `SHA256:${body.slice(0, 8)}…${body.slice(-4)}`;
}
