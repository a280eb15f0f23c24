/** The survey's data: per-source notes, the outline, sections with citations, and the bibliography. */
import { extractJson, field, isRecord, stringList } from '../lib/agent-kit.ts';
import type { Source } from '../lib/sources.ts';

export interface SourceNotes {
  summary: string;
  keyPoints: string[];
  methods: string;
  findings: string;
  limitations: string;
}

export interface Section {
  heading: string;
  summary: string;
  /** 1-based source numbers. */
  sources: number[];
}

export interface Outline {
  title: string;
  sections: Section[];
}

export const MIN_SECTIONS = 2;
export const MAX_SECTIONS = 10;

export function parseNotes(answer: string): SourceNotes | string {
  const json = extractJson(answer);
  if (!json.ok) return json.problem;
  const v = json.value;
  if (!isRecord(v)) return 'The notes must be a JSON object.';
  const notes = { summary: field(v, 'summary'), keyPoints: stringList(v, 'key_points'), methods: field(v, 'methods'), findings: field(v, 'findings'), limitations: field(v, 'limitations') };
  if (notes.summary === '') return 'The notes need a "summary".';
  if (notes.keyPoints.length === 0) return 'The notes need "key_points", a list of strings.';
  return notes;
}

export function parseOutline(answer: string, sourceCount: number): Outline | string {
  const json = extractJson(answer);
  if (!json.ok) return json.problem;
  const v = json.value;
  if (!isRecord(v) || field(v, 'title') === '' || !Array.isArray(v.sections)) return 'The outline must be {"title": "...", "sections": [...]}.';
  const sections: Section[] = [];
  for (const [i, s] of v.sections.entries()) {
    if (!isRecord(s) || field(s, 'heading') === '') return `Section ${i + 1} needs a "heading".`;
    const nums = Array.isArray(s.sources) ? s.sources : [];
    const bad = nums.find((n) => !Number.isInteger(n) || (n as number) < 1 || (n as number) > sourceCount);
    if (bad !== undefined) return `Section ${i + 1} cites source ${JSON.stringify(bad)}; sources are numbered 1 to ${sourceCount}.`;
    sections.push({ heading: field(s, 'heading'), summary: field(s, 'summary'), sources: [...new Set(nums as number[])] });
  }
  if (sections.length < MIN_SECTIONS || sections.length > MAX_SECTIONS) return `The outline needs ${MIN_SECTIONS} to ${MAX_SECTIONS} sections (it has ${sections.length}).`;
  return { title: field(v, 'title'), sections };
}

/** The source numbers cited as [n] or [n, m] in a text. */
export function citations(text: string): number[] {
  const out = new Set<number>();
  for (const m of text.matchAll(/\[(\d+(?:\s*[,;–-]\s*\d+)*)\]/g)) for (const n of m[1]!.split(/\s*[,;–-]\s*/)) out.add(Number(n));
  return [...out].sort((a, b) => a - b);
}

/** A section's text, checked: citations must name real sources, and a section with sources must cite one. */
export function checkSection(text: string, section: Section, sourceCount: number): string | undefined {
  if (text.trim().length < 40) return 'The section is too short; write at least a full paragraph.';
  const cited = citations(text);
  const bad = cited.filter((n) => n < 1 || n > sourceCount);
  if (bad.length > 0) return `The section cites [${bad.join(', ')}], but the sources are numbered 1 to ${sourceCount}.`;
  if (section.sources.length > 0 && cited.length === 0) return `Cite the sources you use as [n], e.g. [${section.sources[0]}].`;
  return undefined;
}

export function bibliography(sources: readonly Source[], cited: readonly number[]): string {
  return cited.map((n) => {
    const s = sources[n - 1]!;
    const who = s.authors ? `${s.authors}${s.year ? ` (${s.year})` : ''}. ` : s.year ? `(${s.year}). ` : '';
    return `[${n}] ${who}${s.title}.${s.url ? ` ${s.url}` : ''}`;
  }).join('\n');
}

export function notesDigest(n: number, source: Source, notes: SourceNotes | undefined): string {
  const head = `[${n}] ${source.title}${source.authors ? ` — ${source.authors}` : ''}${source.year ? ` (${source.year})` : ''}`;
  if (!notes) return `${head}\n(no notes: reading this source failed)`;
  return [head, `Summary: ${notes.summary}`, `Key points: ${notes.keyPoints.join(' | ')}`,
    notes.findings ? `Findings: ${notes.findings}` : '', notes.methods ? `Methods: ${notes.methods}` : '', notes.limitations ? `Limitations: ${notes.limitations}` : '']
    .filter((l) => l !== '').join('\n');
}
