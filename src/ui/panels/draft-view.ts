/**
 * The survey's draft as the agent replies it (components/survey/index.ts): "# Title", "## n. Heading" sections
 * whose text cites sources as [n], and a "## References" section of "[n] …" entries. Lenient and total: what could
 * be read is returned; never throws. `draftMarkdown` writes it back as a Markdown file.
 */

export interface DraftSection {
  heading: string;
  text: string;
  /** Source numbers cited as [n] / [n, m] / [n–m] in the text, ascending. */
  cites: number[];
}

export interface Reference {
  n: number;
  text: string;
}

export interface Draft {
  title: string;
  sections: DraftSection[];
  references: Reference[];
}

const REFERENCES = /^(references|bibliography|sources|works cited)$/i;

/** Source numbers cited in a text; ranges "[2–4]" count each number, absurd ones are ignored. */
export function citedNumbers(text: string): number[] {
  const out = new Set<number>();
  for (const m of text.matchAll(/\[(\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*)\]/g)) {
    for (const part of m[1]!.split(/\s*[,;]\s*/)) {
      const [a, b] = part.split(/\s*[–-]\s*/).map(Number);
      if (a === undefined || !Number.isFinite(a)) continue;
      const end = b !== undefined && Number.isFinite(b) && b >= a && b - a < 100 ? b : a;
      for (let n = a; n <= end; n++) if (n >= 1) out.add(n);
    }
  }
  return [...out].sort((x, y) => x - y);
}

export function parseDraft(text: string): Draft {
  const draft: Draft = { title: '', sections: [], references: [] };
  if (typeof text !== 'string') return draft;
  let section: { heading: string; body: string[] } | undefined;
  let inRefs = false;
  const sections: { heading: string; body: string[] }[] = [];
  for (const raw of text.replace(/\r\n/g, '\n').split('\n')) {
    const h1 = /^#\s+(.+)$/.exec(raw);
    if (h1 && !draft.title && sections.length === 0 && !inRefs) {
      draft.title = h1[1]!.trim();
      continue;
    }
    const h2 = /^#{2,3}\s+(?:\d+[.)]\s*)?(.+)$/.exec(raw);
    if (h2) {
      const heading = h2[1]!.trim();
      inRefs = REFERENCES.test(heading);
      section = inRefs ? undefined : { heading, body: [] };
      if (section) sections.push(section);
      continue;
    }
    if (inRefs) {
      const ref = /^\s*(?:[-*]\s*)?\[(\d{1,4})\]\s*(.+)$/.exec(raw);
      if (ref) draft.references.push({ n: Number(ref[1]), text: ref[2]!.trim() });
      else if (raw.trim() && draft.references.length > 0) draft.references.at(-1)!.text += ` ${raw.trim()}`;
      continue;
    }
    section?.body.push(raw);
  }
  draft.sections = sections
    .map((s) => {
      const body = s.body.join('\n').trim();
      return { heading: s.heading, text: body, cites: citedNumbers(body) };
    })
    .filter((s) => s.text !== '' || s.heading !== '');
  return draft;
}

/** The newest reply in `texts` (oldest first) that reads as a draft (a title or sections); null if none does. */
export function latestDraft(texts: readonly string[]): Draft | null {
  for (let i = texts.length - 1; i >= 0; i--) {
    const d = parseDraft(texts[i]!);
    if (d.sections.length > 0) return d;
  }
  return null;
}

/** The draft as a Markdown document: title, numbered sections, references. */
export function draftMarkdown(d: Draft): string {
  const parts = [`# ${d.title || 'Survey draft'}`];
  d.sections.forEach((s, i) => parts.push(`## ${i + 1}. ${s.heading}\n\n${s.text}`.trimEnd()));
  if (d.references.length > 0) parts.push(`## References\n\n${d.references.map((r) => `[${r.n}] ${r.text}`).join('\n')}`);
  return `${parts.join('\n\n')}\n`;
}

/** A file name for the draft: its title, made safe, ending in .md. */
export function draftFileName(d: Draft): string {
  const base = d.title.replace(/[^\p{L}\p{N}._ -]+/gu, '').trim().replace(/\s+/g, '-').slice(0, 60);
  return `${base || 'survey-draft'}.md`;
}
