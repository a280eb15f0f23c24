/**
 * Session-core benchmarks (issue 3): fork cost flat in session length, append proportional to the step rather than
 * the whole state (against storing the full state per checkpoint), sync sending only the delta, bundle codec
 * throughput, and IndexedDB write throughput in Chromium.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE_SIZE, Session, encodeCanonical, type ImageDelta } from '../src/core/session/index.ts';
import { collectClosure, exportSession, importSession, storeTarget, syncSession } from '../src/core/snapshot/index.ts';
import { ContentStore, MemoryBackend, type StoreBackend } from '../src/core/store/index.ts';
import { chatStep, patternImage, testLlm } from '../test/support/session-fixtures.ts';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import { compared, medianMs, type Figures, type Suite } from './lib.ts';

const STATE_BYTES = 2 << 20; // a 2 MiB component image (32 pages), one region of which changes per step

/** Counts bytes that reach the backend: what a step or a fork really costs in storage. */
class CountingBackend extends MemoryBackend {
  bytes = 0;
  override commit(...args: Parameters<StoreBackend['commit']>): Promise<void> {
    for (const o of args[0]) this.bytes += o.bytes.length;
    return super.commit(...args);
  }
}

interface Built {
  store: ContentStore;
  backend: CountingBackend;
  session: Session;
  image: Uint8Array;
  steps: number;
}

/** The next state: one 256-byte region rewritten, as a whole image and as the delta of the pages it touched. */
function mutate(image: Uint8Array, n: number): { image: Uint8Array; delta: ImageDelta } {
  const next = image.slice();
  const at = (n * 7919 * 64) % (next.length - 256);
  next.set(patternImage(256, n + 1), at);
  const pages = new Map<number, Uint8Array>();
  for (let i = Math.floor(at / PAGE_SIZE); i <= Math.floor((at + 255) / PAGE_SIZE); i++) pages.set(i, next.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  return { image: next, delta: { size: next.length, pages } };
}

async function build(steps: number, stateBytes = STATE_BYTES): Promise<Built> {
  const backend = new CountingBackend();
  const store = new ContentStore(backend);
  let image = patternImage(stateBytes, 3);
  const session = await Session.create(store, { llm: testLlm, components: { vm: image } });
  for (let n = 0; n < steps; n++) {
    image = mutate(image, n).image;
    await session.append(chatStep(n, { vm: image }));
  }
  return { store, backend, session, image, steps };
}

async function forkFigures(b: Built): Promise<{ ms: number; bytes: number }> {
  const ids = (await b.session.history()).map((h) => h.id);
  // Each fork runs on a freshly opened session (cold cache), so it reads and decodes its checkpoint from the store.
  const times: number[] = [];
  for (let n = 0; n < 24; n++) {
    const fresh = await Session.open(b.store, b.session.id);
    const t0 = performance.now();
    await fresh.fork(ids[(n * 37) % ids.length]!, `f${n}`);
    if (n >= 3) times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const before = b.backend.bytes;
  await b.session.fork(ids[Math.floor(ids.length / 2)]!, 'measured');
  return { ms: times[Math.floor(times.length / 2)]!, bytes: b.backend.bytes - before };
}

async function appendFigures(b: Built): Promise<Figures> {
  const RUNS = 11 + 2 + 1;
  // States are captured before timing, and handed over as the runtime does: the pages the step changed.
  const states: { image: Uint8Array; delta: ImageDelta }[] = [];
  for (let i = 0, image = b.image; i < 2 * RUNS; i++) {
    states.push(mutate(image, b.steps + i));
    image = states[i]!.image;
  }
  let n = 0;
  const appendMs = await medianMs(() => b.session.append(chatStep(b.steps + n, { vm: states[n++]!.delta })), 11, 2);
  const before = b.backend.bytes;
  await b.session.append(chatStep(b.steps + n, { vm: states[n++]!.delta }));
  const appendBytes = b.backend.bytes - before;

  // Baseline: a checkpoint that carries the whole state, as full-state checkpoint stores do.
  const baseline = new CountingBackend();
  const baseStore = new ContentStore(baseline);
  const parent = await b.session.head();
  const fullCopy = () => baseStore.put(encodeCanonical({ parent, events: chatStep(b.steps + n).events, llm: testLlm, state: { vm: states[n++]!.image } }));
  const fullCopyMs = await medianMs(fullCopy, 11, 2);
  const baseBefore = baseline.bytes;
  await fullCopy();
  const fullCopyBytes = baseline.bytes - baseBefore;
  return {
    append_ms_1000: compared(appendMs, 'ms', 'full_copy_ms_1000', fullCopyMs),
    append_bytes_1000: compared(appendBytes, 'bytes', 'full_copy_bytes_1000', fullCopyBytes),
  };
}

async function syncFigures(): Promise<Figures> {
  const b = await build(100);
  const target = new ContentStore(new MemoryBackend());
  const first = await syncSession(b.store, storeTarget(target), b.session.id);
  const closure = async () => new Map((await collectClosure(b.store, await b.store.listRefs(`sessions/${b.session.id}/`))).map((o) => [o.id, o.bytes.length]));
  const before = await closure();
  let image = b.image;
  for (let n = 100; n < 110; n++) {
    image = mutate(image, n).image;
    await b.session.append(chatStep(n, { vm: image }));
  }
  const delta = [...(await closure())].filter(([id]) => !before.has(id)).reduce((s, [, size]) => s + size, 0);
  const repeat = await syncSession(b.store, storeTarget(target), b.session.id);
  return {
    sync_first_bytes: { value: first.totalBytes, unit: 'bytes' },
    sync_repeat_bytes: compared(repeat.totalBytes, 'bytes', 'sync_delta_bytes', delta),
    sync_delta_bytes: { value: delta, unit: 'bytes' },
  };
}

async function codecFigures(): Promise<Figures> {
  // ~10 MB of session: a 6 MiB image plus 64 steps each changing a page region (64 KiB pages + events).
  const b = await build(64, 6 << 20);
  const objects = await collectClosure(b.store, await b.store.listRefs(`sessions/${b.session.id}/`));
  const mb = objects.reduce((s, o) => s + o.bytes.length, 0) / 1e6;
  let file: Uint8Array = new Uint8Array(0);
  const encodeMs = await medianMs(async () => {
    file = await exportSession(b.store, b.session.id);
  }, 5, 1);
  const decodeMs = await medianMs(() => importSession(new ContentStore(new MemoryBackend()), file), 5, 1);
  return {
    encode_mb_s: { value: mb / (encodeMs / 1000), unit: 'MB/s' },
    decode_mb_s: { value: mb / (decodeMs / 1000), unit: 'MB/s' },
  };
}

async function idbFigure(): Promise<Figures> {
  const chrome = await openChromiumPage(path.join(path.dirname(fileURLToPath(import.meta.url)), 'idb'));
  try {
    await chrome.load();
    const run = (mib: number) => chrome.page.evaluate((m) => (globalThis as unknown as { ferryIdbBench(m: number): Promise<number> }).ferryIdbBench(m), mib);
    await run(2); // warm-up
    return { idb_write_mb_s: { value: await run(10), unit: 'MB/s' } };
  } finally {
    await chrome.close();
  }
}

export const sessionSuite: Suite = {
  name: 'session',
  description: 'fork/append/sync/codec costs of the session core (memory store), IndexedDB writes in Chromium',
  async run() {
    const small = await build(10);
    const large = await build(1000);
    await forkFigures(await build(10)); // warm-up: the first forks of a process pay for JIT compilation
    const fork10 = await forkFigures(small);
    const fork1000 = await forkFigures(large);
    return {
      fork_ms_10: { value: fork10.ms, unit: 'ms' },
      fork_ms_1000: compared(fork1000.ms, 'ms', 'fork_ms_10', fork10.ms),
      fork_bytes_1000: compared(fork1000.bytes, 'bytes', 'fork_bytes_10', fork10.bytes),
      ...(await appendFigures(large)),
      ...(await syncFigures()),
      ...(await codecFigures()),
      ...(await idbFigure()),
    };
  },
};

