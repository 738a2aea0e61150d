// The local web page: the pool (every peer with its apps, searchable, live), apps launched in the
// page, and this machine's approvals, sessions, shared apps and trusted peers.
import './style.css';
import { get, post, type AppView, type ChangeTopic, type DesktopView, type PendingRequest, type PoolPeer, type PoolView, type SessionView, type SharedAppView, type TrustedKey } from './api.js';
import { byId, el, inputById, formatBytes, shortFingerprint } from './dom.js';

const live = byId('live');
const search = inputById('search');
let pool: PoolView | undefined;
let desktop: DesktopView = { display: undefined, launches: [] };

function say(text: string): void {
  live.textContent = text;
}

function report(error: unknown): void {
  say(error instanceof Error ? error.message : String(error));
}

// ---- The pool -------------------------------------------------------------------------------

function appIcon(peer: PoolPeer, app: AppView): HTMLElement {
  if (app.hasIcon) {
    const query = peer.status === 'self' ? '' : `?peer=${encodeURIComponent(peer.target)}`;
    const image = el('img', { class: 'icon', src: `/api/icons/${encodeURIComponent(app.id)}${query}`, alt: '', loading: 'lazy' });
    // A peer without the icon after all: the letter instead.
    image.addEventListener('error', () => { image.replaceWith(letterIcon(app)); }, { once: true });
    return image;
  }
  return letterIcon(app);
}

function letterIcon(app: AppView): HTMLElement {
  const letter = el('span', { class: 'icon letter', 'aria-hidden': 'true', text: (app.name.trim()[0] ?? '?').toUpperCase() });
  letter.dataset['hue'] = String(Array.from(app.id, (c) => c.charCodeAt(0)).reduce((sum, code) => sum + code, 0) % 8);
  return letter;
}

function matches(query: string, peer: PoolPeer, app: AppView): boolean {
  if (query === '') return true;
  return [app.name, app.comment, app.id, peer.name].some((text) => text.toLowerCase().includes(query));
}

function renderPool(): void {
  const container = byId('peers');
  if (pool === undefined) return;
  const query = search.value.trim().toLowerCase();
  const sections: HTMLElement[] = [];
  let shown = 0;
  for (const peer of pool.peers) {
    const apps = peer.apps.filter((app) => matches(query, peer, app));
    if (query !== '' && apps.length === 0) continue;
    shown += apps.length;
    const status = peer.status === 'self' ? 'this machine' : `${peer.status}${peer.trusted ? ', trusted' : ''}`;
    const heading = el('h3', { id: `peer-${sections.length}` }, peer.name);
    const meta = el('p', { class: 'meta' },
      el('span', { class: `badge ${peer.status}`, text: status }),
      peer.load === undefined ? '' : el('span', { class: 'load', text: `load ${peer.load}` }),
      peer.id === undefined ? '' : el('span', { class: 'fingerprint', title: peer.id, text: shortFingerprint(peer.id) }));
    const list = el('ul', { class: 'apps', 'aria-labelledby': heading.id });
    for (const app of apps) {
      const button = el('button', { type: 'button', class: 'app', 'aria-label': `Run ${app.name} on ${peer.name}` },
        appIcon(peer, app),
        el('span', { class: 'name', text: app.name }),
        el('span', { class: 'comment', text: app.comment }));
      button.dataset['peer'] = peer.target;
      button.dataset['app'] = app.id;
      button.addEventListener('click', () => { launch(peer, app); });
      const item = el('li', {}, button);
      // A GUI app may also open on the daemon's own display (X11 forwarding), when it has one.
      if (!app.terminal && desktop.display !== undefined) {
        const here = el('button', { type: 'button', class: 'on-desktop', text: 'Open on this desktop', 'aria-label': `Open ${app.name} of ${peer.name} on this desktop` });
        here.addEventListener('click', () => { openOnDesktop(peer, app, here); });
        const inPage = el('button', { type: 'button', class: 'on-desktop', text: 'Open in the page', 'aria-label': `Open ${app.name} of ${peer.name} in the page` });
        inPage.addEventListener('click', () => { launch(peer, app); });
        item.append(el('div', { class: 'ways' }, inPage, here));
      }
      list.append(item);
    }
    const body = peer.problem === undefined ? list : el('p', { class: 'muted', text: `apps not available: ${peer.problem}` });
    const section = el('section', { class: 'peer', 'aria-labelledby': heading.id }, heading, meta, body);
    section.dataset['peer'] = peer.name;
    sections.push(section);
  }
  container.replaceChildren(...sections);
  byId('pool-empty').hidden = !(query !== '' && shown === 0);
}

async function loadPool(): Promise<void> {
  pool = await get<PoolView>('/api/pool');
  renderPool();
}

// ---- Launches: a window per app -------------------------------------------------------------

function launch(peer: PoolPeer, app: AppView): void {
  const title = el('h2', { text: `${app.name} on ${peer.name}` });
  const status = el('span', { class: 'status', role: 'status', text: '' });
  const close = el('button', { type: 'button', class: 'close', text: 'Close', 'aria-label': `Close ${app.name}` });
  const body = el('div', { class: 'screen' });
  const frame = el('section', { class: 'window', 'aria-label': `${app.name} on ${peer.name}` }, el('header', {}, title, status, close), body);
  frame.dataset['app'] = app.id;
  byId('windows').append(frame);
  frame.scrollIntoView({ block: 'start' });
  const onStatus = (text: string): void => {
    status.textContent = text;
    frame.dataset['state'] = text;
  };
  // Terminal apps in a terminal; the others on their own display, shown with noVNC.
  frame.dataset['kind'] = app.terminal ? 'terminal' : 'display';
  onStatus('loading…');
  const opened = app.terminal
    ? import('./terminal.js').then(({ openTerminal }) => openTerminal(body, { peer: peer.target, app: app.id }, onStatus))
    : import('./display.js').then(({ openDisplay }) => openDisplay(body, { peer: peer.target, app: app.id, name: app.name }, onStatus));
  opened.catch(report);
  close.addEventListener('click', () => {
    void opened.then((view) => { view.close(); });
    frame.remove();
    search.focus();
  });
}

function openOnDesktop(peer: PoolPeer, app: AppView, button: HTMLButtonElement): void {
  button.disabled = true;
  say(`opening ${app.name} on this desktop (the owner may have to allow it)…`);
  void post('/api/desktop', { peer: peer.target, app: app.id }).then(async () => {
    say('live');
    await loadDesktop();
  }).catch(report).finally(() => { button.disabled = false; });
}

async function loadDesktop(): Promise<void> {
  const before = desktop.display;
  desktop = await get<DesktopView>('/api/desktop');
  if (desktop.display !== before) renderPool();
  const section = byId('desktop-section');
  section.hidden = desktop.display === undefined && desktop.launches.length === 0;
  byId('desktop-title').textContent = desktop.display === undefined ? 'On this desktop' : `On this desktop (${desktop.display})`;
  const container = byId('desktop');
  if (desktop.launches.length === 0) {
    container.replaceChildren(el('li', { class: 'muted', text: 'none' }));
    return;
  }
  container.replaceChildren(...desktop.launches.map((launch) => {
    const ended = launch.state === 'ended';
    const button = el('button', { type: 'button', class: 'stop', text: ended ? 'Dismiss' : 'Stop', 'aria-label': `${ended ? 'Dismiss' : 'Stop'} ${launch.app} of ${launch.peerName} on this desktop` });
    button.addEventListener('click', () => {
      button.disabled = true;
      void post(`/api/desktop/${encodeURIComponent(launch.id)}/stop`).then(loadDesktop).catch(report);
    });
    const state = ended ? (launch.outcome === 'stopped here' ? 'stopped' : `ended with ${launch.outcome ?? 'no status'}`)
      : launch.state === 'waiting' ? `waiting for the owner of ${launch.peerName} to allow it…`
        : launch.state === 'starting' ? 'starting…' : 'running';
    const row = el('li', {}, el('strong', { text: launch.app }), el('span', { text: `on ${launch.peerName}` }), el('span', { class: 'state muted', text: state }), button);
    row.dataset['launch'] = launch.id;
    row.dataset['app'] = launch.app;
    row.dataset['state'] = launch.state;
    return row;
  }));
}

// ---- This machine ---------------------------------------------------------------------------

function decisionButton(request: PendingRequest, decision: 'allow' | 'always' | 'deny', label: string): HTMLButtonElement {
  const button = el('button', { type: 'button', class: `decide ${decision}`, text: label });
  button.addEventListener('click', () => {
    void post(`/api/requests/${request.id}`, { decision }).then(loadRequests).catch(report);
  });
  return button;
}

async function loadRequests(): Promise<void> {
  const requests = await get<PendingRequest[]>('/api/requests');
  byId('approvals').replaceChildren(...requests.map((request) => {
    const text = el('p', {}, el('strong', { text: request.peerName }), ` (${shortFingerprint(request.peerId)}) wants to run `, el('strong', { text: request.appName }));
    const box = el('div', { class: 'approval', role: 'alertdialog', 'aria-label': `Launch request from ${request.peerName}` },
      text,
      el('div', { class: 'actions' }, decisionButton(request, 'allow', 'Allow once'), decisionButton(request, 'always', 'Always'), decisionButton(request, 'deny', 'Deny')));
    box.dataset['request'] = request.id;
    return box;
  }));
}

let sessionTimer: number | undefined;

async function loadSessions(): Promise<void> {
  const sessions = await get<SessionView[]>('/api/sessions');
  const container = byId('sessions');
  if (sessions.length === 0) container.replaceChildren(el('p', { class: 'muted', text: 'none' }));
  else {
    const rows = sessions.map((session) => {
      const stop = el('button', { type: 'button', class: 'stop', text: 'Stop', 'aria-label': `Stop ${session.app} of ${session.peerName}` });
      stop.addEventListener('click', () => {
        stop.disabled = true;
        void post(`/api/sessions/${encodeURIComponent(session.id)}/stop`).then(loadSessions).catch(report);
      });
      const row = el('tr', {},
        el('td', { text: session.app }),
        el('td', { title: session.peerId, text: session.peerName }),
        el('td', { text: session.cpuSeconds === undefined ? '–' : `${session.cpuSeconds.toFixed(1)} s` }),
        el('td', { text: session.memoryBytes === undefined ? '–' : formatBytes(session.memoryBytes) }),
        el('td', {}, stop));
      row.dataset['session'] = session.id;
      return row;
    });
    container.replaceChildren(el('table', { class: 'sessions' },
      el('thead', {}, el('tr', {}, ...['App', 'Peer', 'CPU', 'Memory', ''].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows)));
  }
  // CPU and memory move while sessions run: refresh them every few seconds.
  window.clearTimeout(sessionTimer);
  if (sessions.length > 0) sessionTimer = window.setTimeout(() => { void loadSessions().catch(report); }, 3000);
}

async function loadShared(): Promise<void> {
  const apps = await get<SharedAppView[]>('/api/shared');
  byId('shared').replaceChildren(...apps.map((app) => {
    const box = el('input', { type: 'checkbox', id: `share-${app.id}` });
    box.checked = app.shared;
    box.addEventListener('change', () => {
      void post('/api/shared', { app: app.id, shared: box.checked }).catch(report);
    });
    return el('li', {}, box, el('label', { for: box.id, text: app.name }));
  }));
}

async function loadTrusted(): Promise<void> {
  const keys = await get<TrustedKey[]>('/api/trusted');
  const container = byId('trusted');
  if (keys.length === 0) {
    container.replaceChildren(el('li', { class: 'muted', text: 'none' }));
    return;
  }
  container.replaceChildren(...keys.map((key) => {
    const button = el('button', { type: 'button', class: 'untrust', text: 'Untrust', 'aria-label': `Untrust ${key.name}` });
    button.addEventListener('click', () => {
      void post('/api/untrust', { id: key.fingerprint }).then(loadTrusted).catch(report);
    });
    return el('li', {}, el('span', { text: key.name }), ' ', el('code', { title: key.fingerprint, text: shortFingerprint(key.fingerprint) }), ' ', button);
  }));
}

const loaders: Readonly<Record<ChangeTopic, () => Promise<void>>> = {
  pool: loadPool,
  requests: loadRequests,
  sessions: loadSessions,
  trusted: loadTrusted,
  shared: loadShared,
  desktop: loadDesktop,
};

function refresh(topic: ChangeTopic): void {
  void loaders[topic]().catch(report);
}

function listen(): void {
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    say('live');
    for (const topic of Object.keys(loaders) as ChangeTopic[]) refresh(topic);
  });
  events.addEventListener('error', () => { say('reconnecting…'); });
  events.addEventListener('change', (event: MessageEvent<string>) => {
    const { topic } = JSON.parse(event.data) as { topic: ChangeTopic };
    if (topic in loaders) refresh(topic);
  });
}

search.addEventListener('input', renderPool);
document.addEventListener('keydown', (event) => {
  if (event.key === '/' && document.activeElement !== search && !(document.activeElement instanceof HTMLTextAreaElement)) {
    event.preventDefault();
    search.focus();
  }
});
listen();
