/**
 * A model of a session (branch → list of step labels) and random operation sequences over it, shared by the
 * node property tests and the Chromium ones: both run the same operations against a real Session and compare.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { Session, type Checkpoint } from '../../src/core/session/index.ts';
import { collectClosure } from '../../src/core/snapshot/index.ts';
import type { Store } from '../../src/core/store/index.ts';
import { chatStep, testLlm } from './session-fixtures.ts';

export type Op =
  | { op: 'append' }
  | { op: 'fork'; at: number; name: string }
  | { op: 'rollback'; at: number }
  | { op: 'switch'; to: number };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant<Op>({ op: 'append' }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('fork' as const), at: fc.nat(), name: fc.constantFrom('a', 'b', 'c', 'd', 'e') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rollback' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('switch' as const), to: fc.nat() }) },
);

function label(cp: Checkpoint): string {
  const first = cp.events[0];
  if (!first) return 'root';
  if (first.type === 'fork') return `fork:${first.branch}`;
  return first.type === 'user' ? first.text.replace('question number ', 's') : '?';
}

/** Runs `ops` on a fresh session in `store` and on the model; asserts they agree after every op. */
export async function runOps(store: Store, ops: readonly Op[]): Promise<Session> {
  const session = await Session.create(store, { llm: testLlm, now: 1 });
  const model = new Map<string, string[]>([['main', ['root']]]);
  let current = 'main';
  let n = 0;
  for (const o of ops) {
    const path = model.get(current)!;
    if (o.op === 'append') {
      n++;
      await session.append(chatStep(n));
      path.push(`s${n}`);
    } else if (o.op === 'fork') {
      if (model.has(o.name)) continue;
      const at = o.at % path.length;
      const ids = (await session.history()).map((h) => h.id).reverse();
      await session.fork(ids[at]!, o.name, 2);
      model.set(o.name, [...path.slice(0, at + 1), `fork:${o.name}`]);
    } else if (o.op === 'rollback') {
      const at = o.at % path.length;
      const ids = (await session.history()).map((h) => h.id).reverse();
      await session.rollback(ids[at]!);
      path.length = at + 1;
    } else {
      const names = [...model.keys()].sort();
      current = names[o.to % names.length]!;
      await session.switchBranch(current);
    }
  }
  expect(session.branch).toBe(current);
  expect((await session.branches()).map((b) => b.name)).toEqual([...model.keys()].sort());
  for (const [name, path] of model) {
    expect((await session.history(name)).map((h) => label(h.checkpoint)).reverse(), `branch ${name}`).toEqual(path);
  }
  return session;
}

/** Asserts `b` holds session `sessionId` exactly as `a` does: the same refs and byte-identical object closures. */
export async function expectSameSession(a: Store, b: Store, sessionId: string): Promise<void> {
  const prefix = `sessions/${sessionId}/`;
  const [refsA, refsB] = await Promise.all([a.listRefs(prefix), b.listRefs(prefix)]);
  expect(refsB).toEqual(refsA);
  const [objsA, objsB] = await Promise.all([collectClosure(a, refsA), collectClosure(b, refsB)]);
  const byId = (objs: { id: string; bytes: Uint8Array }[]) => new Map(objs.map((o) => [o.id, o.bytes]));
  const mapA = byId(objsA);
  const mapB = byId(objsB);
  expect([...mapB.keys()].sort()).toEqual([...mapA.keys()].sort());
  for (const [id, bytes] of mapA) expect(mapB.get(id)!.every((x, i) => x === bytes[i]), id).toBe(true);
  const sa = await Session.open(a, sessionId);
  const sb = await Session.open(b, sessionId);
  expect(sb.branch).toBe(sa.branch);
  for (const br of await sa.branches()) {
    expect((await sb.history(br.name)).map((h) => h.id)).toEqual((await sa.history(br.name)).map((h) => h.id));
  }
}
