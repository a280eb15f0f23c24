/**
 * Which nodes a job of child sessions may use (relay-nodes.ts): the space's devices and the relay's unpriced workers
 * always, cloud workers that charge only when the user allows them, nodes without a measured speed never; a node with several slots is that many lanes sharing
 * its speed; and "no node" is a typed error that says what to do. The relay's list is validated like any response.
 */
import { describe, expect, test } from 'vitest';
import { chooseNodes, listSpaceWorkers } from '../../../src/core/parallel/index.ts';
import { SPACE_HEADER, type WorkerList } from '../../../src/core/protocol/index.ts';
import { refusal } from '../../support/refusal.ts';
import { heldPrefixKeys } from '../../../src/core/placement/index.ts';
import { generateSessionKey } from '../../../src/core/snapshot/index.ts';

type Listed = WorkerList['workers'][number];

const worker = (id: string, kind: Listed['kind'], decodeTps: number, slots = 1): Listed => ({
  id: id.padEnd(16, '0'),
  kind,
  embedded: false,
  runs: 0,
  profile: { name: id, model: 'm', tokenizer: 't', engine: 'node-llama-cpp', device: 'cpu', contextSize: 4096, slots, prefillTps: 10 * decodeTps, decodeTps },
  publicKey: 'A'.repeat(87),
});

/** A cloud worker that charges $0.0005 per 1,000 prompt tokens and `outputPer1k` per 1,000 output tokens: a third party's. */
const priced = (id: string, outputPer1k: number, slots = 4): Listed => {
  const w = worker(id, 'cloud', 2000, slots);
  return { ...w, profile: { ...w.profile, price: { promptPer1k: 0.0005, outputPer1k } } };
};

const list: WorkerList = { workers: [worker('a', 'device', 300), worker('b', 'device', 100, 2), priced('c', 0.001, 8), worker('d', 'device', 0)] };

describe('choosing the nodes and lanes for a job', () => {
  test('my devices only by default; the cloud too when allowed; never a node without a measured speed', () => {
    expect(chooseNodes(list, { cloud: false }).nodes.map((n) => n.name)).toEqual(['a', 'b']);
    expect(chooseNodes(list, { cloud: true }).nodes.map((n) => [n.name, n.kind])).toEqual([['a', 'device'], ['b', 'device'], ['c', 'cloud']]);
  });

  test('a cloud worker that charges nothing is the relay owner\'s own: "my devices" may use it, as placement does', () => {
    const withOwn: WorkerList = { workers: [...list.workers, worker('own', 'cloud', 900, 2)] };
    expect(chooseNodes(withOwn, { cloud: false }).nodes.map((n) => [n.name, n.kind])).toEqual([['a', 'device'], ['b', 'device'], ['own', 'cloud']]);
    expect(chooseNodes({ workers: [worker('own', 'cloud', 900)] }, { cloud: false }).nodes.map((n) => n.name)).toEqual(['own']);
  });

  test('a node is one lane per slot (capped), the lanes sharing its speed, so the plan stays proportional to whole nodes', () => {
    const { nodes, lanes } = chooseNodes(list, { cloud: true, maxLanes: 4 });
    expect(nodes.map((n) => [n.name, n.lanes, n.speed])).toEqual([['a', 1, 300], ['b', 2, 100], ['c', 4, 2000]]);
    expect(lanes.map((l) => l.id)).toEqual(['a'.padEnd(16, '0'), `${'b'.padEnd(16, '0')}#0`, `${'b'.padEnd(16, '0')}#1`, ...[0, 1, 2, 3].map((k) => `${'c'.padEnd(16, '0')}#${k}`)]);
    for (const n of nodes) {
      const mine = lanes.filter((l) => l.node === n.id);
      expect(mine).toHaveLength(n.lanes);
      expect(mine.reduce((s, l) => s + l.speed, 0)).toBeCloseTo(n.speed);
    }
  });

  test('only the nodes the user picked', async () => {
    expect(chooseNodes(list, { cloud: true, only: [list.workers[2]!.id, list.workers[0]!.id] }).nodes.map((n) => n.name)).toEqual(['a', 'c']);
    const gone = await refusal(async () => chooseNodes(list, { cloud: false, only: [list.workers[2]!.id] }));
    expect(gone).toMatchObject({ code: 'parallel/no-nodes' });
    expect(gone.message).toMatch(/pick nodes again/);
  });

  test('no node in the space: a typed error that says how to add one, and that the cloud could help when it is there', async () => {
    const none = await refusal(async () => chooseNodes({ workers: [worker('d', 'device', 0)] }, { cloud: true }));
    expect(none).toMatchObject({ code: 'parallel/no-nodes', details: { cloudWorkers: 0 } });
    expect(none.message).toMatch(/Offer this device as a node/);
    const cloudOnly = await refusal(async () => chooseNodes({ workers: [priced('c', 0.001)] }, { cloud: false }));
    expect(cloudOnly.message).toMatch(/1 cloud worker\(s\) are attached that charge for tokens.*allow the cloud/);
  });

  test('with a budget, a worker that charges takes children only if all of them there would stay within it; the host\'s own slot is not a lane', async () => {
    const fleet: WorkerList = { workers: [worker('a', 'device', 300), priced('cheap', 0.001), priced('dear', 0.01)] };
    // 12 children: 6,000 prompt tokens ($0.003) and 12 × 256 output tokens (3,072: $0.003072 at $0.001 per 1k, $0.03072 at $0.01).
    const work = { promptTokens: 6000, outputTokens: 3072 };
    expect(chooseNodes(fleet, { cloud: true, budget: { usd: 0.01, ...work } }).nodes.map((n) => n.name)).toEqual(['a', 'cheap']);
    expect(chooseNodes(fleet, { cloud: true, budget: { usd: 1, ...work } }).nodes.map((n) => n.name)).toEqual(['a', 'cheap', 'dear']);
    expect(chooseNodes(fleet, { cloud: true, budget: { usd: 0, ...work } }).nodes.map((n) => n.name)).toEqual(['a']);
    expect(chooseNodes(fleet, { cloud: true }).nodes.map((n) => n.name)).toEqual(['a', 'cheap', 'dear']);
    const over = await refusal(async () => chooseNodes({ workers: [priced('dear', 0.01)] }, { cloud: true, budget: { usd: 0, ...work } }));
    expect(over).toMatchObject({ code: 'parallel/no-nodes' });
    expect(over.message).toMatch(/1 cloud worker\(s\) would charge more than the \$0 budget for them; raise the budget/);
    // The device the parent runs on, offering one slot, has none left for a child.
    expect(await refusal(async () => chooseNodes(fleet, { cloud: false, host: fleet.workers[0]!.id }))).toMatchObject({ code: 'parallel/no-nodes' });
  });

  test('the relay\'s list is asked for with the space header and validated', async () => {
    const asked: { url: string; space: string | null }[] = [];
    const answer = (body: unknown, status = 200): typeof fetch => async (input, init) => {
      asked.push({ url: String(input), space: new Headers(init?.headers).get(SPACE_HEADER) });
      return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
    };
    await expect(listSpaceWorkers('http://relay.test/', 'space-id', answer(list))).resolves.toEqual(list);
    expect(asked[0]).toEqual({ url: 'http://relay.test/api/v2/workers', space: 'space-id' });
    await expect(listSpaceWorkers('http://relay.test', 's', answer({ workers: [{ id: 'x' }] }))).rejects.toMatchObject({ code: 'relay/bad-response' });
    await expect(listSpaceWorkers('http://relay.test', 's', answer('<html>', 200))).rejects.toMatchObject({ code: 'relay/bad-response' });
    await expect(listSpaceWorkers('http://relay.test', 's', answer({ error: { code: 'protocol/bad-request', message: 'no' } }, 400))).rejects.toMatchObject({ code: 'relay/bad-response', details: { status: 400 } });
    await expect(listSpaceWorkers('http://relay.test', 's', () => Promise.reject(new TypeError('connection refused')))).rejects.toMatchObject({ code: 'relay/unreachable' });
  });

  test('children go first, and in proportion, to the node the policy finds holding their parent\'s prompt (keyed with the parent\'s key)', async () => {
    const parentKey = generateSessionKey();
    const prompt = Array.from({ length: 1024 }, (_, i) => (i * 7) % 500);
    const keys = await heldPrefixKeys(parentKey, prompt);
    const holder: Listed = { ...worker('holder', 'device', 300), prefixes: keys };
    const two: WorkerList = { workers: [worker('a', 'device', 300), holder] };
    const prefix = { keys, promptTokens: prompt.length + 64, outputTokens: 16 };
    const placed = chooseNodes(two, { cloud: false, prefix }).nodes;
    expect(placed.map((n) => n.name)).toEqual(['holder', 'a']);
    expect(placed[0]!.speed).toBeGreaterThan(placed[1]!.speed);
    // Another parent's key: the same prompt matches nothing, and the plan is the measured speeds in list order.
    const stranger = { ...prefix, keys: await heldPrefixKeys(generateSessionKey(), prompt) };
    expect(chooseNodes(two, { cloud: false, prefix: stranger }).nodes.map((n) => [n.name, n.speed])).toEqual([['a', 300], ['holder', 300]]);
  });
});
