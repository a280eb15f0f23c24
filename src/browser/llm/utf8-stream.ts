/**
 * Token pieces are bytes, and one character may be split across byte-fallback tokens: text is released only
 * for complete UTF-8 sequences, and `pending` says whether bytes are still waiting for the rest of a character.
 */
export class Utf8Stream {
  readonly #decoder = new TextDecoder('utf-8');
  #held: Uint8Array = new Uint8Array(0);

  get pending(): boolean {
    return this.#held.length > 0;
  }

  push(bytes: Uint8Array): string {
    const all = this.#held.length === 0 ? bytes : concat(this.#held, bytes);
    const cut = all.length - incompleteTail(all);
    this.#held = all.slice(cut);
    return cut === 0 ? '' : this.#decoder.decode(all.subarray(0, cut));
  }

  /** At the end: a character that never completed becomes U+FFFD, as llama.cpp shows it. */
  flush(): string {
    const rest = this.#held.length === 0 ? '' : this.#decoder.decode(this.#held);
    this.#held = new Uint8Array(0);
    return rest;
  }
}

/** How many trailing bytes start a multi-byte sequence that is not complete yet (0 to 3). */
function incompleteTail(bytes: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const b = bytes[bytes.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead byte
    const need = (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
