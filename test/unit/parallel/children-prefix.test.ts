/**
 * The device's own survey split counts the prefix a worker holds: a session runs on a real worker (NodeLink + RunHost
 * on node-llama-cpp, attached to a real relay), comes back to the device, and forks children there through the agent
 * worker's API with a parallel config carrying the key that run used (session-records.ts `prefixKey`). The children's
 * plan keys the parent's prompt (its newest generation's held prefix) with that key, finds the worker listing it, and
 * plans that worker at its speed with the prefix held — faster than its measured decode speed, which is all a plan
 * without the key sees.
 */
import { describe, expect, test } from 'vitest';
import { createAgentApi, unwrap } from '../../../src/core/host/agent-api.ts';
import type { RunnerEvent } from '../../../src/core/host/index.ts';
import { keptHandle } from '../../../src/core/llm/kept-engine.ts';
import { RelayHttp, createSpaceSecret, fetchSnapshot, spaceCredentials, toBase64Url } from '../../../src/core/protocol/index.ts';
import type { ChildProgress } from '../../../src/core/runtime/index.ts';
import { componentFiles } from '../../../server/runtime/node-tools.ts';
import { fixtures } from '../../support/runtime-agent.ts';
import { usePrefixHolder } from '../api/prefix-holder.ts';
import { openSocket } from './space-nodes.ts';

describe("the device's survey split and the prefix a worker holds", () => {
  const prefixRig = usePrefixHolder();

  test("run on the worker and back here, a fork's children plan that worker first, at its speed with the parent's prompt held", async () => {
    const { relay, device, store, sessionId, published, listWorkers } = prefixRig();
    await prefixRig().runThere('tell me a story');
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, store, { engine: null });
    const listed = (await listWorkers()).workers[0]!;
    expect(listed.prefixes?.length).toBeGreaterThan(0);

    const f = await fixtures();
    const components = Object.fromEntries(await Promise.all([f.ids.scribe, f.ids.tally].map(async (id, i) => [id, await componentFiles(i === 0 ? f.dirs.scribe : f.dirs.tally)] as const)));
    const api = createAgentApi<string>({ createEngine: async () => keptHandle(device), openStore: async () => store, openSocket });
    const events: RunnerEvent[] = [];
    api.subscribe((e) => events.push(e));
    const space = (await spaceCredentials(createSpaceSecret())).id;
    try {
      const parallel = { relayUrl: relay.url, space, prefixKey: toBase64Url(published.key) };
      unwrap(await api.start({ components, engine: 'tiny', store: 'device', sessionId, sampling: { maxTokens: 8, temperature: 0, seed: 0 }, parallel }));
      unwrap(await api.send({ type: 'user', text: '/fork a|b' }));
      const progress = events.flatMap((e) => (e.type === 'child-progress' ? [e.progress] : []));
      const nodes = progress.find((p): p is Extract<ChildProgress, { type: 'nodes' }> => p.type === 'nodes');
      expect(nodes?.nodes.map((n) => n.id)).toEqual([listed.id]);
      expect(nodes!.nodes[0]!.speed).toBeGreaterThan(listed.profile.decodeTps);
      expect(progress.filter((p) => p.type === 'child-done').map((p) => (p as { ok: boolean }).ok)).toEqual([true, true]);
      // A key that is not a session key is refused before anything runs.
      expect(await api.start({ components, engine: 'tiny', store: 'device', sessionId, parallel: { ...parallel, prefixKey: 'short' } })).toMatchObject({ error: { code: 'runtime/bad-input' } });
    } finally {
      await api.close();
    }
  }, 180_000);
});
