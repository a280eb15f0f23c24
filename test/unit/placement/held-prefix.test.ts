/**
 * Placement counts a held prefix: a node whose profile lists the keys of a prefix of the step's prompt (a fork's, a
 * rollback's branch's or a child's, whose KV it holds for another session) prefills only the rest, its estimate
 * says how much it holds, and the reason names it. A node holding none is estimated with the whole prompt.
 */
import { describe, expect, it } from 'vitest';
import { PREFIX_BLOCK, prefixBlockKeys } from '../../../src/core/llm/prefix-keys.ts';
import { decide, restoreNodeProfile } from '../../../src/core/placement/index.ts';
import { codeOf, node, step } from './fixtures.ts';

/** A parent's 2,048-token prompt and a fork of it with 512 tokens of its own. */
const parent = Array.from({ length: 2048 }, (_, i) => (i * 7919) % 32000);
const fork = [...parent, ...Array.from({ length: 512 }, (_, i) => (i * 104729 + 3) % 32000)];
const forkKeys = prefixBlockKeys(fork);
const own = { kind: 'my-device' as const, trust: 'own' as const, prefill: 100, decode: 10 };

describe('placement: a held prefix', () => {
  it('of two otherwise equal nodes, the one holding the fork’s prefix wins, prefills only the suffix and says so', () => {
    const holder = node('holder', { ...own, name: 'laptop', prefixes: prefixBlockKeys(parent) });
    const other = node('other', { ...own, name: 'desktop' });
    const s = step({ promptTokens: fork.length, expectedOutputTokens: 100, prefixKeys: forkKeys });
    for (const nodes of [[holder, other], [other, holder]]) {
      const d = decide(s, nodes, { objective: 'fastest', privacy: 'any' });
      expect(d.nodeId).toBe('holder');
      const held = d.candidates.find((c) => c.nodeId === 'holder')!;
      const none = d.candidates.find((c) => c.nodeId === 'other')!;
      expect(held.prefixTokens).toBe(2048);
      expect(held.prefillMs).toBeCloseTo((512 / 100) * 1000, 6);
      expect(none.prefixTokens).toBe(0);
      expect(none.prefillMs).toBeCloseTo((fork.length / 100) * 1000, 6);
      expect(d.reason).toContain('laptop');
      expect(d.reason).toContain('it already holds the first 2,048 prompt tokens (a shared prefix), so it reads only the other 512');
    }
  });

  it('counts only the prompt’s leading whole blocks the node holds', () => {
    // Another prompt that shares the first 1,000 tokens: 15 whole blocks in common.
    const other = [...parent.slice(0, 1000), ...Array.from({ length: 1000 }, (_, i) => (i * 31 + 5) % 32000)];
    const holder = node('holder', { ...own, prefixes: prefixBlockKeys(other) });
    const d = decide(step({ promptTokens: fork.length, prefixKeys: forkKeys }), [holder], { objective: 'fastest', privacy: 'any' });
    expect(d.estimate.prefixTokens).toBe(Math.floor(1000 / PREFIX_BLOCK) * PREFIX_BLOCK);
    // The session's own cache there, when longer, is what counts; the reason then names no shared prefix.
    const cached = decide(step({ promptTokens: fork.length, prefixKeys: forkKeys, cachedTokens: { holder: 2400 } }), [holder], { objective: 'fastest', privacy: 'any' });
    expect(cached.estimate.prefixTokens).toBe(0);
    expect(cached.estimate.prefillMs).toBeCloseTo((160 / 100) * 1000, 6);
    expect(cached.reason).not.toContain('shared prefix');
  });

  it('a node may ship a held prefix’s KV to another', () => {
    const holder = node('holder', { ...own, prefill: 10, link: { rttMs: 5, bandwidthBps: 1e9 }, prefixes: prefixBlockKeys(parent) });
    const fast = node('fast', { ...own, prefill: 100, decode: 100, link: { rttMs: 5, bandwidthBps: 1e9 } });
    const d = decide(step({ promptTokens: fork.length, prefixKeys: forkKeys, kvBytesPerToken: 1000 }), [holder, fast], { objective: 'fastest', privacy: 'any' });
    const e = d.candidates.find((c) => c.nodeId === 'fast')!;
    expect(e.resume).toBe('kv-ship');
    expect(e.kvShipMs).toBeLessThan(e.prefillMs);
  });

  it('refuses malformed prefix keys, in a step or a profile', () => {
    expect(codeOf(() => decide(step({ prefixKeys: ['not a key'] }), [node('a')], { objective: 'fastest', privacy: 'any' }))).toBe('placement/bad-step');
    expect(codeOf(() => restoreNodeProfile({ ...node('a'), prefixes: ['x'.repeat(40)] }))).toBe('placement/bad-profile');
  });
});
