/**
 * Script injected into the relay's own pages by test/e2e/share.test.ts (bundled there with esbuild): it drives the
 * real browser relay client against the real IndexedDB store, at the relay's origin, as the PWA would.
 */
import { openIdbStore } from '../../src/browser/idb-store.ts';
import { RelayClient, importShareLink, shareQrSvg, takeShareLinkFromLocation } from '../../src/browser/relay-client.ts';
import { restorePublished, serializePublished } from '../../src/core/protocol/published-record.ts';
import { PAGE_SIZE, Session } from '../../src/core/session/index.ts';
import { objectId, toHex } from '../../src/core/store/index.ts';
import { chatStep, patternImage, testLlm } from '../support/session-fixtures.ts';

export interface Described {
  sessionId: string;
  branch: string;
  heads: Record<string, string>;
  histories: Record<string, string[]>;
  /** SHA-256 of the current component image. */
  image: string;
}

export interface Published {
  link: string;
  saved: string;
  objects: number;
  objectBytes: number;
  qrSvg: string;
}

async function describeSession(db: string, sessionId: string): Promise<Described> {
  const store = openIdbStore({ name: db });
  try {
    const s = await Session.open(store, sessionId);
    const branches = await s.branches();
    const histories: Record<string, string[]> = {};
    for (const b of branches) histories[b.name] = (await s.history(b.name)).map((h) => h.id);
    const head = (await s.history())[0]!;
    return { sessionId, branch: s.branch, heads: Object.fromEntries(branches.map((b) => [b.name, b.head])), histories, image: await objectId(await s.component(head.id, 'vm')) };
  } finally {
    await store.close();
  }
}

async function append(session: Session, from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) {
    const head = (await session.history())[0]!;
    const image = (await session.component(head.id, 'vm')).slice();
    image.set(patternImage(300, n + 3), (n * 4099) % (image.length - 300));
    await session.append(chatStep(n, { vm: image }));
  }
}

async function create(db: string, steps: number): Promise<Described> {
  const store = openIdbStore({ name: db });
  const session = await Session.create(store, { llm: testLlm, components: { vm: patternImage(4 * PAGE_SIZE, 5) } });
  await append(session, 0, steps);
  await session.fork((await session.history())[2]!.id, 'idea');
  await store.close();
  return describeSession(db, session.id);
}

async function more(db: string, sessionId: string, from: number, count: number): Promise<Described> {
  const store = openIdbStore({ name: db });
  await append(await Session.open(store, sessionId), from, count);
  await store.close();
  return describeSession(db, sessionId);
}

async function publish(db: string, sessionId: string, saved?: string): Promise<Published> {
  const store = openIdbStore({ name: db });
  try {
    const shared = await new RelayClient().publish(store, sessionId, saved ? restorePublished(saved) : undefined);
    return { link: shared.link, saved: serializePublished(shared), objects: shared.sync.objects, objectBytes: shared.sync.objectBytes, qrSvg: await shareQrSvg(shared.link) };
  } finally {
    await store.close();
  }
}

/** Opens the share link this page was loaded from; reports the session and the address bar afterwards. */
async function openFromLocation(db: string): Promise<{ described: Described; hrefAfter: string; relayOrigin: string; keyHex: string }> {
  const link = takeShareLinkFromLocation();
  if (!link) throw new Error(`This page (${location.href}) was not opened from a share link.`);
  const store = openIdbStore({ name: db });
  const { sessionId } = await importShareLink(link, store);
  await store.close();
  return { described: await describeSession(db, sessionId), hrefAfter: location.href, relayOrigin: link.relay, keyHex: toHex(link.key) };
}

Object.assign(globalThis, { ferryShare: { create, more, publish, openFromLocation, describeSession } });
