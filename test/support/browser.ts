import { chromium, type BrowserContext } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromiumArgs, requireChromium, trustAndResolveArgs } from './chromium.ts';

export interface FreshBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export interface FreshBrowserOptions {
  viewport?: { width: number; height: number };
  isMobile?: boolean;
  hasTouch?: boolean;
  args?: readonly string[];
  /** Base64 SHA-256 of the public keys of certificates to trust (a test CA's or server's). */
  trustSpki?: readonly string[];
  /** Host names resolved to these addresses instead of by DNS (e.g. { 'ferry.test': '127.0.0.1' }). */
  mapHosts?: Readonly<Record<string, string>>;
}

/** Debian's Chromium with a brand-new profile, as a first-time visitor has (no cache, no service worker). */
export async function launchFreshChromium(options: FreshBrowserOptions = {}): Promise<FreshBrowser> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: requireChromium(),
    args: [...chromiumArgs, ...trustAndResolveArgs(options), ...(options.args ?? [])],
    viewport: options.viewport ?? { width: 1280, height: 800 },
    ...(options.isMobile === undefined ? {} : { isMobile: options.isMobile }),
    ...(options.hasTouch === undefined ? {} : { hasTouch: options.hasTouch }),
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
