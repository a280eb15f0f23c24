/** The podcast's data: the outline the model plans, and the speaker lines it writes, with their checks. */
import { extractJson, field, isRecord, stringList } from '../lib/agent-kit.ts';

export interface Speaker {
  name: string;
  role: string;
}

export interface Segment {
  title: string;
  summary: string;
  points: string[];
}

export interface Outline {
  title: string;
  segments: Segment[];
}

export interface Line {
  speaker: string;
  text: string;
}

export const MIN_SEGMENTS = 2;
export const MAX_SEGMENTS = 8;
export const MIN_LINES = 4;

export function parseOutline(answer: string): Outline | string {
  const json = extractJson(answer);
  if (!json.ok) return json.problem;
  const v = json.value;
  if (!isRecord(v)) return 'The outline must be a JSON object {"title", "segments"}.';
  const title = field(v, 'title');
  if (title === '') return 'The outline needs a "title".';
  if (!Array.isArray(v.segments)) return 'The outline needs "segments", a list.';
  const segments: Segment[] = [];
  for (const [i, s] of v.segments.entries()) {
    if (!isRecord(s) || field(s, 'title') === '') return `Segment ${i + 1} needs a "title".`;
    segments.push({ title: field(s, 'title'), summary: field(s, 'summary'), points: stringList(s, 'points') });
  }
  if (segments.length < MIN_SEGMENTS || segments.length > MAX_SEGMENTS) return `The outline needs ${MIN_SEGMENTS} to ${MAX_SEGMENTS} segments (it has ${segments.length}).`;
  return { title, segments };
}

/**
 * "NAME: words" lines (also "**NAME:** words" and "NAME (laughs): words"). Every line must belong to a known
 * speaker and at least two must speak; other text (stage directions, headings) is dropped.
 */
export function parseLines(answer: string, speakers: readonly Speaker[]): Line[] | string {
  const byName = new Map(speakers.map((s) => [s.name.toLowerCase(), s.name]));
  const lines: Line[] = [];
  const unknown = new Set<string>();
  for (const raw of answer.split('\n')) {
    const m = /^\s*[*_]{0,2}([A-Za-z][\w .'-]{0,40}?)[*_]{0,2}\s*(?:\([^)]*\))?\s*[:：]\s*[*_]{0,2}\s*(.+)$/.exec(raw);
    if (!m) continue;
    const name = byName.get(m[1]!.trim().toLowerCase());
    if (!name) { unknown.add(m[1]!.trim()); continue; }
    const text = m[2]!.trim();
    if (text !== '') lines.push({ speaker: name, text });
  }
  const names = speakers.map((s) => s.name).join(', ');
  if (lines.length < MIN_LINES) {
    return `Write at least ${MIN_LINES} lines of dialogue, one per line as "NAME: words", with NAME one of ${names}` +
      (unknown.size > 0 ? ` (not ${[...unknown].slice(0, 3).join(', ')}).` : '.');
  }
  if (new Set(lines.map((l) => l.speaker)).size < 2) return `Every segment is a conversation: at least two of ${names} must speak.`;
  return lines;
}

export function renderScript(outline: Outline, speakers: readonly Speaker[], segments: readonly Line[][]): string {
  const cast = speakers.map((s) => `- **${s.name}** — ${s.role}`).join('\n');
  const body = outline.segments.map((seg, i) => {
    const lines = (segments[i] ?? []).map((l) => `**${l.speaker}:** ${l.text}`).join('\n\n');
    return `## ${i + 1}. ${seg.title}\n\n${lines}`;
  });
  return `# ${outline.title}\n\n${cast}\n\n${body.join('\n\n')}\n`;
}
