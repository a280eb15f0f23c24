/**
 * Builds the relay ships stay off the wire: a session published for the relay's workers (omitRelayBuilds) leaves
 * out the carried builds the relay lists and keeps the others; a host that lacks a build gets it from the relay's
 * library, verified against its id (a tampered image is refused); and a worker with another library — none of the
 * session's builds — runs the session on a real engine (tiny generated model): one build from the relay, the other
 * from the session.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { withRelayBuilds, loadRelayBuild } from '../../../src/core/host/relay-builds.ts';
import { RunHost } from '../../../src/core/host/run-host.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { RelayHttp, createWorkerKeys, fetchSnapshot, forgetRelayBuilds, publishSession, type PublishResult } from '../../../src/core/protocol/index.ts';
import { buildComponentName, loadSessionBuild } from '../../../src/core/runtime/builds.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { Session } from '../../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { FerryError } from '../../../src/core/errors.ts';
import { runOnHost } from '../../support/host-run.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, type Fixtures } from '../../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

describe('component builds the relay ships', () => {
  let f: Fixtures;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  /** Ships the scribe agent's build only, not the tally tool's. */
  let relay: TestRelay;
  let engine: Engine;
  let http: RelayHttp;

  beforeAll(async () => {
    f = await fixtures();
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, componentDirs: [f.dirs.scribe] });
    http = new RelayHttp({ baseUrl: relay.url });
    engine = await tinyEngine(await tinyModelFile());
  }, 180_000);

  afterAll(async () => {
    await relay?.close();
    await engine?.dispose();
    await dirs?.cleanup();
  });

  /** A new session of the scribe with the tally tool on a device store, checkpointed once. */
  async function deviceSession(): Promise<{ store: Store; id: string }> {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await runtime.dispose();
    return { store, id: runtime.session.id };
  }

  test('the relay lists the builds it ships', async () => {
    expect(await http.componentBuilds()).toEqual([f.ids.scribe]);
  });

  test('published for the relay, the session leaves out the builds the relay ships and carries the others', async () => {
    const device = await deviceSession();
    const whole = await publishSession(device.store, device.id, http);
    const lean = await publishSession(device.store, device.id, http, undefined, { omitRelayBuilds: true });
    expect(lean.sync.totalBytes).toBeLessThan(whole.sync.totalBytes);

    // A fetcher that wants every build gets the tally's from the snapshot, and none of the scribe's.
    const fetcher = createMemoryStore();
    await fetchSnapshot(http, lean.snapshot.id, lean.key, fetcher);
    const session = await Session.open(fetcher, device.id);
    const head = await session.head();
    expect(Object.keys((await session.checkpoint(head)).components)).toEqual(expect.arrayContaining([buildComponentName(f.ids.scribe), buildComponentName(f.ids.tally)]));
    expect((await loadSessionBuild(session, head, f.ids.tally))?.id).toBe(f.ids.tally);
    await expect(session.component(head, buildComponentName(f.ids.scribe))).rejects.toMatchObject({ code: 'store/missing-object' });
    expect(await loadSessionBuild(session, head, f.ids.scribe)).toBeUndefined();

    // The whole snapshot carries both.
    const other = createMemoryStore();
    await fetchSnapshot(http, whole.snapshot.id, whole.key, other);
    const copy = await Session.open(other, device.id);
    expect((await loadSessionBuild(copy, await copy.head(), f.ids.scribe))?.id).toBe(f.ids.scribe);
  });

  test('the relay\'s list is asked for once per relay; forgotten (a worker lacked a build), it is asked again', async () => {
    let asked = 0;
    const counting = new RelayHttp({
      baseUrl: relay.url,
      fetch: (input, init) => {
        if (String(input).endsWith('/api/v2/components')) asked++;
        return fetch(input, init);
      },
    });
    forgetRelayBuilds(relay.url);
    const device = await deviceSession();
    const first = await publishSession(device.store, device.id, counting, undefined, { omitRelayBuilds: true });
    const second = await publishSession(device.store, device.id, counting, undefined, { omitRelayBuilds: true });
    expect(asked).toBe(1);
    forgetRelayBuilds(relay.url);
    const third = await publishSession(device.store, device.id, counting, undefined, { omitRelayBuilds: true });
    expect(asked).toBe(2);
    // Each left the relay's build out.
    const whole = await publishSession(device.store, device.id, counting);
    for (const lean of [first, second, third]) expect(lean.sync.totalBytes).toBeLessThan(whole.sync.totalBytes);
  });

  test('a build from the relay loads only as the build its id names', async () => {
    expect((await loadRelayBuild(http, f.ids.scribe))?.id).toBe(f.ids.scribe);
    // One it does not ship: none (the host's own refusal stands).
    expect(await loadRelayBuild(http, f.ids.tally)).toBeUndefined();
    const refused = new FerryError('relay/unknown-component', 'this host has no such build');
    await expect(withRelayBuilds(() => Promise.reject(refused), http)(f.ids.tally)).rejects.toBe(refused);
    // Asked for by another id, the relay's image is not that build.
    const renamed = new RelayHttp({ baseUrl: relay.url, fetch: (input, init) => fetch(String(input).replace(f.ids.journal, f.ids.scribe), init) });
    await expect(loadRelayBuild(renamed, f.ids.journal)).rejects.toMatchObject({ code: 'component/hash-mismatch' });
    // A byte changed on the way: refused.
    const tampered = new RelayHttp({
      baseUrl: relay.url,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).includes('/components/')) return res;
        const bytes = new Uint8Array(await res.arrayBuffer());
        bytes[bytes.length - 1]! ^= 1;
        return new Response(bytes, { status: res.status, headers: res.headers });
      },
    });
    await expect(loadRelayBuild(tampered, f.ids.scribe)).rejects.toMatchObject({ code: expect.stringMatching(/^component\//) });
  });

  /** Runs `published` (input start) on `host` as the relay would assign it; resolves with its events once it ends. */
  const runOn = (host: RunHost, published: PublishResult) => runOnHost(host, published, { type: 'start', task: 'ferry river harbour' }, 8);

  test('a worker with another library runs the session: the relay\'s build from the relay, the other from the session', async () => {
    const device = await deviceSession();
    const published = await publishSession(device.store, device.id, http, undefined, { omitRelayBuilds: true });
    const none = (id: string): Promise<never> => Promise.reject(new FerryError('relay/unknown-component', `no component ${id}`));
    const asked: string[] = [];
    const elsewhere = new RunHost({
      engine,
      keys: await createWorkerKeys(),
      load: withRelayBuilds(async (id) => (asked.push(id), none(id)), http),
      hasBuild: () => false,
      relayUrl: () => relay.url,
      kv: { load: false, save: false },
    });
    try {
      const run = await runOn(elsewhere, published);
      expect(run.error).toBeUndefined();
      expect(['idle', 'done']).toContain(run.status);
      const types = run.events.map((e) => e.type);
      expect(types).toContain('token');
      expect(types).toContain('checkpoint');
      expect(asked).toEqual(expect.arrayContaining([f.ids.scribe, f.ids.tally]));
    } finally {
      await elsewhere.close();
    }

    // Without the relay's library that worker cannot run it: the scribe's build is nowhere it looks.
    const blind = new RunHost({ engine, keys: await createWorkerKeys(), load: none, hasBuild: () => false, relayUrl: () => relay.url, kv: { load: false, save: false } });
    try {
      const run = await runOn(blind, published);
      expect(run.status).toBe('failed');
      // The host's own refusal: the session names the build, but its bytes stayed with the relay.
      expect(run.error).toMatchObject({ code: 'relay/unknown-component' });
    } finally {
      await blind.close();
    }
  });
});
