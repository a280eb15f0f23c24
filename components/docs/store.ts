/** The documents and a BM25 index over their passages (Robertson–Spärck Jones weights, k1 = 1.2, b = 0.75). */
import { splitPassages, terms } from './text.ts';

export const LIMITS = {
  docChars: 1_000_000,
  totalChars: 16_000_000,
  docs: 500,
  titleChars: 300,
  /** Characters of passage text a search result shows. */
  snippetChars: 700,
  /** The most characters one `get` returns. */
  resultChars: 16_000,
};

const K1 = 1.2;
const B = 0.75;

interface Passage {
  doc: number;
  /** 1-based within its document. */
  n: number;
  text: string;
  tf: Map<string, number>;
  length: number;
}

export interface Doc {
  id: number;
  title: string;
  source: string | undefined;
  characters: number;
  passages: Passage[];
}

export interface Hit {
  doc: number;
  title: string;
  passage: number;
  score: number;
  text: string;
}

export class DocStore {
  readonly docs = new Map<number, Doc>();
  readonly #df = new Map<string, number>();
  #passages = 0;
  #totalLength = 0;
  #totalChars = 0;
  #nextId = 1;

  add(title: string, text: string, source: string | undefined): Doc {
    if (this.docs.size >= LIMITS.docs) throw `The store already holds ${LIMITS.docs} documents, the most it can; remove some first.`;
    if (this.#totalChars + text.length > LIMITS.totalChars) throw `Adding ${text.length} characters would pass the store's limit of ${LIMITS.totalChars}; remove documents first.`;
    const id = this.#nextId++;
    const passages = splitPassages(text).map((p, i): Passage => {
      const tokens = terms(`${i === 0 ? `${title}\n` : ''}${p}`);
      const tf = new Map<string, number>();
      for (const t of tokens) tf.set(t, (tf.get(t) ?? 0) + 1);
      return { doc: id, n: i + 1, text: p, tf, length: tokens.length };
    });
    if (passages.every((p) => p.length === 0)) throw '"text" has no words to search for (only punctuation, numbers or very common words).';
    for (const p of passages) this.#count(p, 1);
    const doc: Doc = { id, title, source, characters: text.length, passages };
    this.docs.set(id, doc);
    this.#totalChars += text.length;
    return doc;
  }

  remove(id: number): void {
    const doc = this.get(id);
    for (const p of doc.passages) this.#count(p, -1);
    this.docs.delete(id);
    this.#totalChars -= doc.characters;
  }

  get(id: number): Doc {
    const doc = this.docs.get(id);
    if (!doc) throw `No document ${id}; use {"op":"list"} to see the documents.`;
    return doc;
  }

  search(query: string, k: number, only: number | undefined): Hit[] {
    const q = [...new Set(terms(query))];
    if (q.length === 0) throw '"query" has no searchable words (only stopwords or punctuation).';
    const pool = only === undefined ? [...this.docs.values()] : [this.get(only)];
    const avg = this.#passages === 0 ? 1 : this.#totalLength / this.#passages;
    const hits: Hit[] = [];
    for (const doc of pool) {
      for (const p of doc.passages) {
        let score = 0;
        for (const t of q) {
          const tf = p.tf.get(t);
          if (tf === undefined) continue;
          const df = this.#df.get(t) ?? 0;
          const idf = Math.log(1 + (this.#passages - df + 0.5) / (df + 0.5));
          score += (idf * tf * (K1 + 1)) / (tf + K1 * (1 - B + (B * p.length) / avg));
        }
        if (score > 0) hits.push({ doc: doc.id, title: doc.title, passage: p.n, score: Math.round(score * 1000) / 1000, text: snippet(p.text, q) });
      }
    }
    // Stable order for equal scores (document, then passage) so results are reproducible.
    hits.sort((a, b) => b.score - a.score || a.doc - b.doc || a.passage - b.passage);
    return hits.slice(0, k);
  }

  #count(p: Passage, sign: 1 | -1): void {
    for (const t of p.tf.keys()) {
      const df = (this.#df.get(t) ?? 0) + sign;
      if (df === 0) this.#df.delete(t);
      else this.#df.set(t, df);
    }
    this.#passages += sign;
    this.#totalLength += sign * p.length;
  }
}

/** The passage, or the window of it around the first query term when it is long. */
function snippet(text: string, q: string[]): string {
  if (text.length <= LIMITS.snippetChars) return text;
  const lower = text.toLowerCase();
  const at = Math.min(...q.map((t) => lower.indexOf(t)).filter((i) => i >= 0), text.length);
  const start = Math.max(0, Math.min(at - 150, text.length - LIMITS.snippetChars));
  return `${start > 0 ? '…' : ''}${text.slice(start, start + LIMITS.snippetChars)}${start + LIMITS.snippetChars < text.length ? '…' : ''}`;
}
