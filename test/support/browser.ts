import { chromium, type BrowserContext } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromiumArgs, requireChromium } from './chromium.ts';

export interface FreshBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Debian's Chromium with a brand-new profile, as a first-time visitor has (no cache, no service worker). */
export async function launchFreshChromium(options: { viewport?: { width: number; height: number }; isMobile?: boolean; hasTouch?: boolean; args?: readonly string[] } = {}): Promise<FreshBrowser> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: requireChromium(),
    args: [...chromiumArgs, ...(options.args ?? [])],
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
