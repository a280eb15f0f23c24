/**
 * The podcast's script as the agent replies it (components/podcast/script.ts renderScript): "# Title", a cast list
 * "- **Name** — role", then "## n. Segment" headings with "**Name:** words" lines. Parsing is lenient: whatever
 * could be read is returned (a reply that is not a script gives no segments), and it never throws.
 */

export interface ScriptSpeaker {
  name: string;
  role: string;
}

export interface ScriptLine {
  speaker: string;
  text: string;
}

export interface ScriptSegment {
  title: string;
  lines: ScriptLine[];
}

export interface Script {
  title: string;
  speakers: ScriptSpeaker[];
  segments: ScriptSegment[];
}

const strip = (s: string): string => s.replace(/^[*_\s]+|[*_\s]+$/g, '');

const LINE = /^\s*[*_]{0,2}([A-Za-z][\w .'-]{0,40}?)[*_]{0,2}\s*(?:\([^)]*\))?\s*[:：]\s*[*_]{0,2}\s*(.+)$/;
const CAST = /^\s*[-*]\s+[*_]{0,2}([^*_—–:-][^*_—–:]{0,40}?)[*_]{0,2}\s*(?:[—–:-]+\s*(.*))?$/;

export function parseScript(text: string): Script {
  const script: Script = { title: '', speakers: [], segments: [] };
  if (typeof text !== 'string') return script;
  let current: ScriptSegment | undefined;
  const known = new Map<string, string>();
  for (const raw of text.replace(/\r\n/g, '\n').split('\n')) {
    const line = raw.trimEnd();
    const h1 = /^#\s+(.+)$/.exec(line);
    if (h1 && !script.title) {
      script.title = strip(h1[1]!);
      continue;
    }
    const h2 = /^#{2,3}\s+(?:\d+[.)]\s*)?(.+)$/.exec(line);
    if (h2) {
      current = { title: strip(h2[1]!), lines: [] };
      script.segments.push(current);
      continue;
    }
    if (!current) {
      const cast = CAST.exec(line);
      if (cast) {
        const name = strip(cast[1]!);
        if (name && !known.has(name.toLowerCase())) {
          known.set(name.toLowerCase(), name);
          script.speakers.push({ name, role: strip(cast[2] ?? '') });
        }
      }
      continue;
    }
    const m = LINE.exec(line);
    if (!m) continue;
    const said = strip(m[1]!);
    const words = m[2]!.replace(/^[*_]+\s*/, '').trim();
    if (!said || !words) continue;
    // A speaker not in the cast still speaks (the model may add one); it joins the cast so it gets a voice.
    let name = known.get(said.toLowerCase());
    if (!name) {
      name = said;
      known.set(said.toLowerCase(), said);
      script.speakers.push({ name, role: '' });
    }
    current.lines.push({ speaker: name, text: words });
  }
  script.segments = script.segments.filter((s) => s.lines.length > 0);
  return script;
}

/** The newest reply in `texts` (oldest first) that reads as a script with at least one line; null if none does. */
export function latestScript(texts: readonly string[]): Script | null {
  for (let i = texts.length - 1; i >= 0; i--) {
    const s = parseScript(texts[i]!);
    if (s.segments.length > 0) return s;
  }
  return null;
}

/** Voices for speakers: distinct voices in the script's language first, round robin when there are fewer voices. */
export function assignVoices<V extends { lang: string; name: string }>(speakers: readonly ScriptSpeaker[], voices: readonly V[], lang = 'en'): Map<string, V> {
  const out = new Map<string, V>();
  if (voices.length === 0) return out;
  const prefix = lang.toLowerCase().split('-')[0]!;
  const preferred = voices.filter((v) => v.lang.toLowerCase().startsWith(prefix));
  const pool = preferred.length > 0 ? preferred : [...voices];
  speakers.forEach((s, i) => out.set(s.name, pool[i % pool.length]!));
  return out;
}
