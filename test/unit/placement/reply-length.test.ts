/**
 * How long the next reply is expected to be (src/core/placement/reply-length.ts): the mean of the session's recent
 * replies under the reply limit, the limit before any reply; during a reply, what is left of that, and once past
 * it as many again as generated so far, never past the limit. Bad numbers are refused with a typed error.
 */
import { describe, expect, test } from 'vitest';
import { RECENT_REPLIES, expectedReplyTokens, remainingReplyTokens } from '../../../src/core/placement/index.ts';
import { codeOf } from './fixtures.ts';

describe('expected reply length', () => {
  test('the limit before any reply; then the mean of the recent replies, rounded', () => {
    expect(expectedReplyTokens([], 512)).toBe(512);
    expect(expectedReplyTokens([100, 201], 512)).toBe(151);
  });

  test(`only the last ${RECENT_REPLIES} replies count, so a session that turns to long drafts is followed`, () => {
    const reading = Array.from({ length: 20 }, () => 300);
    expect(expectedReplyTokens(reading, 4096)).toBe(300);
    const drafting = [...reading, ...Array.from({ length: RECENT_REPLIES }, () => 3000)];
    expect(expectedReplyTokens(drafting, 4096)).toBe(3000);
  });

  test('never above the limit (it may have been lowered since), never below one token', () => {
    expect(expectedReplyTokens([3000, 3000], 512)).toBe(512);
    expect(expectedReplyTokens([0, 0], 512)).toBe(1);
  });

  test('bad lengths are refused', () => {
    expect(codeOf(() => expectedReplyTokens([10, -1], 512))).toBe('placement/bad-tokens');
    expect(codeOf(() => expectedReplyTokens([10], Number.NaN))).toBe('placement/bad-tokens');
  });
});

describe('tokens still to come', () => {
  test('within the expectation: what is left of it', () => {
    expect(remainingReplyTokens(500, 0, 2048)).toBe(500);
    expect(remainingReplyTokens(500, 120, 2048)).toBe(380);
  });

  test('past the expectation: as many again as so far, up to the limit', () => {
    expect(remainingReplyTokens(500, 500, 2048)).toBe(500);
    expect(remainingReplyTokens(500, 900, 2048)).toBe(900);
    expect(remainingReplyTokens(500, 1500, 2048)).toBe(548);
    expect(remainingReplyTokens(0, 0, 2048)).toBe(1);
  });

  test('none at or past the limit', () => {
    expect(remainingReplyTokens(500, 2048, 2048)).toBe(0);
    expect(remainingReplyTokens(500, 3000, 2048)).toBe(0);
  });

  test('bad counts are refused', () => {
    expect(codeOf(() => remainingReplyTokens(500, Number.POSITIVE_INFINITY, 2048))).toBe('placement/bad-tokens');
    expect(codeOf(() => remainingReplyTokens(-5, 10, 2048))).toBe('placement/bad-tokens');
  });
});
