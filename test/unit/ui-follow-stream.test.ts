/**
 * The streaming reply follows the page's bottom while the reader is there (src/ui/follow-stream.ts), over a page model
 * that scrolls as a browser does (instantly, clamped, and a scroll event after each change of position):
 * - a reader who scrolls up — even to within a few lines of the bottom, as scrolling a control into view does — is
 *   left there as tokens land, and the control stays put;
 * - scrolling back to the bottom follows again; content that grows without a scroll changes nothing.
 */
import { describe, expect, test } from 'vitest';
import { StreamFollower, type ScrollView } from '../../src/ui/follow-stream.ts';

/** A page of `height` px in a `viewport` px window; `follower` hears its scroll events. */
class Page implements ScrollView {
  scrollY = 0;
  follower: StreamFollower | undefined;
  constructor(public scrollHeight: number, readonly innerHeight: number) {}
  scrollTo(top: number): void {
    const next = Math.max(0, Math.min(top, this.scrollHeight - this.innerHeight));
    if (next === this.scrollY) return;
    this.scrollY = next;
    this.follower?.scrolled();
  }
  /** The reader (or a test driver) scrolls. */
  readerScrolls(top: number): void {
    this.scrollTo(top);
  }
  /** A line of text lands. */
  grow(px: number): void {
    this.scrollHeight += px;
    this.follower?.grew();
  }
}

function streaming(height: number, viewport: number, scrollY = Math.max(0, height - viewport)): Page {
  const page = new Page(height, viewport);
  page.scrollY = scrollY;
  page.follower = new StreamFollower(page);
  return page;
}

describe('a streaming reply', () => {
  test('follows the bottom while the reader is there, from a page that fit the window on', () => {
    const page = streaming(600, 800);
    for (let i = 0; i < 40; i++) page.grow(24);
    expect(page.scrollY).toBe(page.scrollHeight - page.innerHeight);
    expect(page.follower!.following).toBe(true);
  });

  test('leaves a reader who scrolled up to a control near the bottom where they are, as lines land', () => {
    const page = streaming(1300, 800);
    // A control 45 px above the bottom scrolled into view: the reader is not at the bottom, if close to it.
    page.readerScrolls(page.scrollHeight - page.innerHeight - 45);
    const at = page.scrollY;
    for (let i = 0; i < 10; i++) page.grow(24);
    expect(page.scrollY).toBe(at);
    expect(page.follower!.following).toBe(false);
  });

  test('follows again once the reader scrolls back to the bottom', () => {
    const page = streaming(1300, 800);
    page.readerScrolls(100);
    page.grow(24);
    expect(page.scrollY).toBe(100);
    page.readerScrolls(page.scrollHeight - page.innerHeight);
    page.grow(24);
    expect(page.scrollY).toBe(page.scrollHeight - page.innerHeight);
  });

  test('does not follow a stream that starts with the reader far up the page; content growing without a scroll changes nothing', () => {
    const page = streaming(3000, 800, 200);
    page.grow(24);
    expect(page.scrollY).toBe(200);
    const following = streaming(1000, 800);
    following.scrollHeight += 300; // a tool line, no scroll event
    following.grow(24);
    expect(following.scrollY).toBe(following.scrollHeight - following.innerHeight);
  });
});
