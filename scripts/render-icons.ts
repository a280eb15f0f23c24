/**
 * Renders public/icons/ferry.svg to the PNG sizes the manifest and iOS need, with headless Chromium.
 * Run after changing the SVG: `npx tsx scripts/render-icons.ts`. The PNGs are committed (a few KB each).
 */
import { chromium } from 'playwright-core';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromiumArgs, requireChromium } from '../test/support/chromium.ts';

const iconsDir = path.join(import.meta.dirname, '..', 'public', 'icons');
const svg = await readFile(path.join(iconsDir, 'ferry.svg'), 'utf8');
// Maskable icons keep their content inside the central 80% safe zone, on a full-bleed background.
const targets = [
  { file: 'ferry-180.png', size: 180, maskable: false },
  { file: 'ferry-192.png', size: 192, maskable: false },
  { file: 'ferry-512.png', size: 512, maskable: false },
  { file: 'ferry-maskable-512.png', size: 512, maskable: true },
];

const profile = await mkdtemp(path.join(os.tmpdir(), 'ferry-icons-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: requireChromium(), args: chromiumArgs });
try {
  const page = await context.newPage();
  for (const { file, size, maskable } of targets) {
    await page.setViewportSize({ width: size, height: size });
    const inner = maskable ? Math.round(size * 0.8) : size;
    await page.setContent(
      `<html><body style="margin:0;background:${maskable ? '#0f5257' : 'transparent'};display:grid;place-items:center;height:${size}px">` +
        `<div style="width:${inner}px;height:${inner}px">${svg.replace('<svg ', `<svg width="${inner}" height="${inner}" `)}</div></body></html>`,
    );
    await page.screenshot({ path: path.join(iconsDir, file), omitBackground: !maskable });
    console.log(`wrote public/icons/${file}`);
  }
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
