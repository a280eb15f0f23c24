/**
 * The session key a relay's workers keyed a session's held prefixes with stays on this device after the session comes
 * back (src/browser/session-records.ts prefixKey): its run's while it is away, its last run's once the placement
 * record is dropped, else its share's; none for a session that never left.
 */
import 'fake-indexeddb/auto';
import { describe, expect, test } from 'vitest';
import { openAppDb } from '../../src/browser/app-db.ts';
import { SessionRecords } from '../../src/browser/session-records.ts';
import { serializeRelayPlacement } from '../../src/core/host/index.ts';
import { serializePublished } from '../../src/core/protocol/published-record.ts';
import { generateSessionKey } from '../../src/core/snapshot/index.ts';

const snapshot = { id: 'a'.repeat(22), manifest: 'b'.repeat(64), version: 1, createdAt: 1, updatedAt: 1 };
const published = (key: Uint8Array) => ({ snapshot, writeToken: 'w'.repeat(43), key });

describe("a session's prefix key", () => {
  test('away, back, shared, never left', async () => {
    const records = new SessionRecords(await openAppDb('ferry-app-prefix-key'));
    expect(await records.prefixKey('s1')).toBeUndefined();
    const shared = generateSessionKey();
    await records.savePublished('s1', serializePublished(published(shared)));
    expect(await records.prefixKey('s1')).toEqual(shared);
    const ran = generateSessionKey();
    await records.savePlacement('s1', serializeRelayPlacement({ published: published(ran), run: null }));
    expect(await records.prefixKey('s1')).toEqual(ran);
    // Back here: the placement record goes, the key its run used stays.
    await records.savePlacement('s1', null);
    expect(await records.placement('s1')).toBeUndefined();
    expect(await records.prefixKey('s1')).toEqual(ran);
    await records.remove('s1');
    expect(await records.prefixKey('s1')).toBeUndefined();
  });

  test("a delete's undo puts the share and the run's key back with the session", async () => {
    const records = new SessionRecords(await openAppDb('ferry-app-prefix-key-undo'));
    const [shared, ran] = [generateSessionKey(), generateSessionKey()];
    await records.savePublished('s1', serializePublished(published(shared)));
    await records.savePlacement('s1', serializeRelayPlacement({ published: published(ran), run: null }));
    await records.savePlacement('s1', null);
    const share = await records.published('s1');
    const deleted = await records.remove('s1');
    expect([await records.published('s1'), await records.prefixKey('s1')]).toEqual([undefined, undefined]);
    await records.restore('s1', deleted);
    expect(await records.published('s1')).toBe(share);
    expect(await records.prefixKey('s1')).toEqual(ran);
  });
});
