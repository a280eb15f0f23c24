/** Text processing for the document store: passages and search terms. */

/** Passages aim for this many characters: big enough to carry a point, small enough to quote. */
const TARGET = 900;
const MAX = 1600;

/** Splits text into passages at paragraph breaks, merging short paragraphs and cutting long ones at sentences. */
export function splitPassages(text: string): string[] {
  const paragraphs = text.replace(/\r\n/g, '\n').split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== '');
  const pieces: string[] = [];
  for (const p of paragraphs) {
    if (p.length <= MAX) { pieces.push(p); continue; }
    let current = '';
    for (const sentence of p.match(/[^.!?]*[.!?]+["')\]]*\s*|[^.!?]+$/g) ?? [p]) {
      if (current.length + sentence.length > TARGET && current !== '') { pieces.push(current.trim()); current = ''; }
      // A "sentence" longer than MAX (no punctuation at all) is cut hard.
      if (sentence.length > MAX) for (let i = 0; i < sentence.length; i += MAX) pieces.push(sentence.slice(i, i + MAX));
      else current += sentence;
    }
    if (current.trim() !== '') pieces.push(current.trim());
  }
  const passages: string[] = [];
  for (const piece of pieces) {
    const last = passages[passages.length - 1];
    if (last !== undefined && last.length + piece.length + 2 <= TARGET) passages[passages.length - 1] = `${last}\n\n${piece}`;
    else passages.push(piece);
  }
  return passages;
}

const STOPWORDS = new Set(('a an and are as at be been but by can did do does for from had has have he her his how i if in into is it its ' +
  'me my no not of on or our she so than that the their them then there these they this those to was we were what when where which who ' +
  'why will with you your').split(' '));

/** Lower-cased word tokens without stopwords, lightly stemmed so "models" finds "model" and "queries" finds "query". */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    if (STOPWORDS.has(raw) || (raw.length === 1 && !/\d/.test(raw))) continue;
    out.push(stem(raw));
  }
  return out;
}

function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us') && !word.endsWith('is')) return word.slice(0, -1);
  return word;
}
