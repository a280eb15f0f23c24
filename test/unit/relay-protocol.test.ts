/** The wire protocol's pure parts: share links, base64url and want bitmaps, manifests, saved publish records. */
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeBitmap, decodeManifest, encodeBitmap, encodeManifest, fromBase64Url, makeManifest, parseShareLink, shareLink, toBase64Url } from '../../src/core/protocol/index.ts';
import { restorePublished, serializePublished } from '../../src/core/protocol/published-record.ts';
import { encodeCanonical } from '../../src/core/session/index.ts';

const id64 = 'ab'.repeat(32);
const sid = 'cd'.repeat(16);
const snap = 'ef'.repeat(20);

describe('share links', () => {
  test('round-trip with the key only in the fragment', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const link = shareLink('https://ferry.example:8443/some/path', snap, key);
    expect(link).toBe(`https://ferry.example:8443/s/${snap}#k=${toBase64Url(key)}`);
    expect(new URL(link).pathname).not.toContain(toBase64Url(key));
    expect(parseShareLink(link)).toEqual({ relay: 'https://ferry.example:8443', snapshotId: snap, key });
  });

  test('damaged links are refused with what is wrong', () => {
    const key = toBase64Url(new Uint8Array(32));
    for (const bad of ['not a url', `ftp://x/s/${snap}#k=${key}`, `https://x/t/${snap}#k=${key}`, `https://x/s/${snap.slice(1)}#k=${key}`, `https://x/s/${snap}`, `https://x/s/${snap}#k=${key.slice(0, 20)}`, `https://x/s/${snap}#k=${key}!!`]) {
      expect(() => parseShareLink(bad), bad).toThrow(expect.objectContaining({ code: 'protocol/bad-link' }));
    }
  });

  test('base64url and want bitmaps round-trip; wrong lengths are refused', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
      expect(fromBase64Url(toBase64Url(b))).toEqual(b);
    }));
    fc.assert(fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (flags) => {
      expect(decodeBitmap(encodeBitmap(flags), flags.length, 'relay/bad-response')).toEqual(flags);
    }));
    expect(() => decodeBitmap(encodeBitmap([true, false]), 9, 'relay/bad-response')).toThrow(expect.objectContaining({ code: 'relay/bad-response' }));
  });
});

describe('snapshot manifests', () => {
  test('round-trip, sorted refs, canonical bytes', async () => {
    const m = makeManifest(sid, [{ name: `sessions/${sid}/head`, id: id64 }, { name: `sessions/${sid}/branches/main`, id: id64 }], 5);
    expect(m.refs.map((r) => r.name)).toEqual([`sessions/${sid}/branches/main`, `sessions/${sid}/head`]);
    const { bytes } = await encodeManifest(m);
    expect(decodeManifest(bytes)).toEqual(m);
  });

  test('carry the session title a share names, trimmed; an empty or overlong one is refused', async () => {
    const refs = [{ name: `sessions/${sid}/head`, id: id64 }];
    const m = makeManifest(sid, refs, 5, '  Harbour story ');
    expect(m.title).toBe('Harbour story');
    expect(decodeManifest((await encodeManifest(m)).bytes).title).toBe('Harbour story');
    expect(makeManifest(sid, refs, 5)).not.toHaveProperty('title');
    for (const title of ['   ', 'x'.repeat(121)]) expect(() => makeManifest(sid, refs, 5, title)).toThrow(expect.objectContaining({ code: 'protocol/bad-manifest' }));
  });

  test('refuses refs of another session, duplicates, no head, and junk', () => {
    const head = { name: `sessions/${sid}/head`, id: id64 };
    const cases = [
      { k: 'ferry/snapshot-manifest', v: 1, session: sid, refs: [head, { name: `sessions/${'00'.repeat(16)}/branches/x`, id: id64 }], at: 1 },
      { k: 'ferry/snapshot-manifest', v: 1, session: sid, refs: [head, head], at: 1 },
      { k: 'ferry/snapshot-manifest', v: 1, session: sid, refs: [{ name: `sessions/${sid}/branches/main`, id: id64 }], at: 1 },
      { k: 'ferry/snapshot-manifest', v: 2, session: sid, refs: [head], at: 1 },
      { k: 'ferry/snapshot-manifest', v: 1, session: sid, refs: [{ name: 'refs/../../etc', id: id64 }, head], at: 1 },
    ];
    for (const c of cases) expect(() => decodeManifest(encodeCanonical(c))).toThrow(expect.objectContaining({ code: 'protocol/bad-manifest' }));
    expect(() => decodeManifest(new Uint8Array([0xc1]))).toThrow(expect.objectContaining({ code: 'protocol/bad-manifest' }));
  });
});

describe('saved publish records', () => {
  test('round-trip, and damaged records are refused', () => {
    const p = { snapshot: { id: snap, manifest: id64, version: 2, createdAt: 1, updatedAt: 2 }, writeToken: 'A'.repeat(43), key: new Uint8Array(32).fill(3) };
    expect(restorePublished(serializePublished(p))).toEqual(p);
    for (const bad of ['{', '{}', serializePublished(p).replace('"v":1', '"v":2'), serializePublished({ ...p, writeToken: 'short' })]) {
      expect(() => restorePublished(bad)).toThrow(expect.objectContaining({ code: 'protocol/bad-published' }));
    }
  });
});
