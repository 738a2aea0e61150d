// The catalogue as the daemon serves it: loaded from the XDG data folders and the config, and
// the view peers receive (no host paths, nothing beyond what a launcher needs).
import { loadCatalog, xdgDataDirs, type Catalog, type ExtraApp, type SharedApp } from '../catalog/catalog.js';
import type { Config } from '../config/schema.js';
import type { AppView } from '../lib/views.js';

export async function catalogFromConfig(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<Catalog> {
  const extra: ExtraApp[] = config.extraApps.map((app) => ({
    id: app.id,
    name: app.name,
    exec: app.exec,
    terminal: app.terminal,
    mimeTypes: app.mimeTypes,
    categories: app.categories,
    ...(app.comment === '' ? {} : { comment: app.comment }),
    ...(app.icon === '' ? {} : { icon: app.icon }),
  }));
  return loadCatalog({
    dataDirs: xdgDataDirs(env),
    policy: { share: config.share.apps, deny: config.share.deny, defaults: config.defaults, perApp: config.apps },
    extra,
  });
}

export type { AppView } from '../lib/views.js';

export function appView(app: SharedApp): AppView {
  return {
    id: app.id,
    name: app.name,
    comment: app.comment,
    terminal: app.terminal,
    mimeTypes: app.mimeTypes,
    categories: app.categories,
    takesFiles: app.takesFiles,
    hasIcon: app.iconPath !== undefined,
  };
}

export function catalogView(catalog: Catalog): { version: string; apps: AppView[] } {
  return { version: catalog.version, apps: catalog.apps.map(appView) };
}
