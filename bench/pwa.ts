/**
 * PWA benchmarks (issue 7), against the built app (dist/) served by `ferry start`, in Debian's Chromium:
 * - initial_js_gzip_bytes: the JavaScript the page needs before first paint (the entry script and the modules it
 *   preloads statically; lazy screens and workers excluded), gzipped. Baseline: every JS file the build emits.
 * - shell_ready_ms: navigation → the app interactive (its session list read from IndexedDB), served by the service
 *   worker. Baseline: the first visit, from the network with no service worker yet.
 * - session_open_ms: a session of 500 steps (imported from a .ferry file written by the session core) opened from
 *   the list → its transcript shown. Baseline: a 10-step session, opened the same way.
 * - share_open_ms: a share link of a 10-step session opened in a browser that never saw the app → the transcript
 *   shown and the message box ready to send. Baseline: the app's first visit in such a browser (no link), so the
 *   ratio is what opening the link adds to loading the app.
 * - long_turn_ms_20: the 20th turn of a conversation past its 4,096-token context (compacted) → its first token, against
 *   the 1st turn's (bench/long-turn.ts).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { Session, type SessionEvent, type Step } from '../src/core/session/index.ts';
import { exportSession } from '../src/core/snapshot/index.ts';
import { RelayHttp, publishSession, shareLink } from '../src/core/protocol/index.ts';
import { createMemoryStore } from '../src/core/store/index.ts';
import { launchFreshChromium } from '../test/support/browser.ts';
import { startRelayProcess } from '../test/support/relay-process.ts';
import { testLlm } from '../test/support/session-fixtures.ts';
import { compared, type Figures, type Suite } from './lib.ts';
import { longTurnFigures } from './long-turn.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const RUNS = 7;

/** The entry script plus the modules index.html preloads: what runs before the first paint. */
async function initialJs(): Promise<{ initial: number; all: number; files: string[] }> {
  const html = await readFile(path.join(dist, 'index.html'), 'utf8');
  const files = [...html.matchAll(/<script[^>]+type="module"[^>]+src="([^"]+)"|<link[^>]+rel="modulepreload"[^>]+href="([^"]+)"/g)].map((m) => (m[1] ?? m[2])!);
  const gz = async (rel: string): Promise<number> => gzipSync(await readFile(path.join(dist, rel.replace(/^\//, '')))).length;
  let initial = 0;
  for (const f of files) initial += await gz(f);
  let all = 0;
  for (const f of await readdir(path.join(dist, 'assets'))) if (f.endsWith('.js')) all += await gz(`assets/${f}`);
  return { initial, all, files };
}

/** A realistic step: a question, a markdown answer (some with code), now and then a tool call and its result. */
function step(n: number): Step {
  const at = 1_700_000_000_000 + n * 1000;
  const text =
    n % 5 === 0
      ? `Here is **step ${n}** as code:\n\n\`\`\`ts\nexport function f${n}(x: number): number {\n  return x * ${n};\n}\n\`\`\`\n\nIt multiplies by ${n}.`
      : `Answer ${n}: a paragraph with *emphasis*, a [link](https://example.org/${n}) and a list:\n\n- first point\n- second point`;
  const events: SessionEvent[] = [
    { type: 'user', text: `Question ${n}: how does part ${n} work?`, at },
    { type: 'generation', tokens: Array.from({ length: 48 }, (_, i) => (i * 31 + n) % 500), text, engine: { id: 'bench', kind: 'scripted', model: testLlm.model }, timings: { promptMs: 3, generateMs: 40 }, finish: 'stop', at: at + 1 },
  ];
  if (n % 7 === 0) {
    events.push({ type: 'tool-call', callId: `c${n}`, tool: 'workspace.read', args: `{"path":"src/part${n}.ts"}`, at: at + 2 });
    events.push({ type: 'tool-result', callId: `c${n}`, ok: true, output: `// part ${n}\nexport const value = ${n};\n`, at: at + 3 });
  }
  return { events, now: at + 4 };
}

async function benchSession(steps: number): Promise<{ store: ReturnType<typeof createMemoryStore>; id: string }> {
  const store = createMemoryStore();
  const session = await Session.create(store, { llm: testLlm, now: 1_700_000_000_000 });
  for (let n = 1; n <= steps; n++) await session.append(step(n));
  return { store, id: session.id };
}

async function sessionFile(steps: number): Promise<{ id: string; bytes: Uint8Array }> {
  const { store, id } = await benchSession(steps);
  return { id, bytes: await exportSession(store, id) };
}

/** ms from navigation to `done` in a browser that never saw the app (a new profile each time). */
async function freshVisitMs(url: string, done: (page: Page) => Promise<unknown>): Promise<number> {
  const browser = await launchFreshChromium({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  try {
    const page = await browser.context.newPage();
    const t0 = performance.now();
    await page.goto(url);
    await done(page);
    return performance.now() - t0;
  } finally {
    await browser.close();
  }
}

async function ready(page: Page): Promise<void> {
  await page.locator('html[data-ready="true"]').waitFor({ timeout: 60_000 });
}

/** ms from navigation start to the app's "interactive" mark. */
const interactiveMs = (page: Page): Promise<number> => page.evaluate(() => performance.getEntriesByName('ferry-interactive')[0]!.startTime);

/**
 * Opens a session from the list by its hash route; ms until its transcript is rendered with every step loaded.
 * (A string, not a function: tsx would wrap named inner functions in a helper the page does not have.)
 */
function openSessionMs(page: Page, id: string, steps: number): Promise<number> {
  return page.evaluate(`new Promise((resolve) => {
    const t0 = performance.now();
    location.hash = '#/s/${id}';
    const check = () => {
      const t = document.querySelector('[data-testid="transcript"][data-ready="true"][data-steps="${steps}"] [data-testid="agent-message"]');
      if (t) resolve(performance.now() - t0);
      else requestAnimationFrame(check);
    };
    check();
  })`);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const pwaSuite: Suite = {
  name: 'pwa',
  description: 'the built PWA in Chromium: initial JS, shell ready from the service worker, opening a 500-step session, a share link, a long conversation',
  async run(): Promise<Figures> {
    if (!existsSync(path.join(dist, 'index.html'))) throw new Error('dist/ has no build: run `npm run build` first.');
    const js = await initialJs();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-pwa-'));
    const relay = await startRelayProcess(['--data', dataDir]);
    const browser = await launchFreshChromium({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      const page = await browser.context.newPage();
      await page.goto(relay.url);
      await ready(page);
      const firstVisit = await interactiveMs(page);
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 60_000 });

      const shell: number[] = [];
      for (let i = 0; i < RUNS + 1; i++) {
        await page.reload();
        await ready(page);
        if (!(await page.evaluate(() => navigator.serviceWorker.controller !== null))) throw new Error('The page was not served by the service worker.');
        if (i > 0) shell.push(await interactiveMs(page));
      }

      const open: Record<number, number[]> = {};
      for (const steps of [10, 500]) {
        const file = await sessionFile(steps);
        const filePath = path.join(dataDir, `bench-${steps}.ferry`);
        await writeFile(filePath, file.bytes);
        await page.evaluate(() => (location.hash = '#/'));
        await page.getByTestId('import-input').setInputFiles(filePath);
        await page.locator(`[data-testid="transcript"][data-ready="true"][data-steps="${steps}"]`).waitFor({ timeout: 120_000 });
        open[steps] = [];
        for (let i = 0; i < RUNS + 1; i++) {
          await page.evaluate(() => (location.hash = '#/'));
          await page.getByTestId('session-list').waitFor();
          const ms = await openSessionMs(page, file.id, steps);
          if (i > 0) open[steps].push(ms);
        }
      }

      const shared = await benchSession(10);
      const published = await publishSession(shared.store, shared.id, new RelayHttp({ baseUrl: relay.url }));
      const link = shareLink(relay.url, published.snapshot.id, published.key);
      const linkOpen: number[] = [];
      const firstVisits: number[] = [];
      for (let i = 0; i < 5; i++) {
        firstVisits.push(await freshVisitMs(relay.url, ready));
        linkOpen.push(
          await freshVisitMs(link, async (p) => {
            await p.locator('[data-testid="transcript"][data-ready="true"][data-steps="10"]').waitFor({ timeout: 120_000 });
            await p.getByLabel('Message').waitFor();
          }),
        );
      }

      return {
        ...(await longTurnFigures()),
        share_open_ms: compared(median(linkOpen), 'ms', "the app's first visit in a fresh browser", median(firstVisits)),
        initial_js_gzip_bytes: compared(js.initial, 'bytes', 'all JS in the build, gzip', js.all),
        shell_ready_ms: compared(median(shell), 'ms', 'first visit from the network', firstVisit),
        session_open_ms: compared(median(open[500]!), 'ms', '10-step session', median(open[10]!)),
      };
    } finally {
      await browser.close();
      await relay.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};
