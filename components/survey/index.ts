/**
 * `survey`: many sources → per-source notes → an outline → sections with citations → a bibliography.
 * The parent adds every source to the docs tool, then forks one child per source (fork-children); each child is
 * this same agent started with a `source-notes` task, which reads its source and ends with its notes as JSON. The
 * parent merges the children's notes, plans the outline, writes each section citing sources as [n] (checked: real
 * source numbers only), and appends the bibliography of what the text cites.
 * Task: JSON {topic, sources: [text | {title, text, authors?, year?, url?}]}, or the topic alone (plain text, or JSON
 * without "sources"): the sources are then the documents the person added to docs (files, pasted text, web pages),
 * listed and read from there. A child's task is {mode: "source-notes", topic, index, source}.
 */
import { Conversation, field, guarded, isRecord, parseTask, route, type AgentAction, type AgentEvent, type ChildResult, type Outcome, type WitToolResult } from '../lib/agent-kit.ts';
import { addToDocs, clipText, DOCS_LIST_ID, listDocs, onDocRead, onDocsAdded, parseSources, readDocs, SOURCE_PROMPT_CHARS, sourcesFromList, type Source } from '../lib/sources.ts';
import { bibliography, checkSection, citations, notesDigest, parseNotes, parseOutline, type Outline, type SourceNotes } from './draft.ts';

const TOOLS = ['docs', 'notes'];
const MAX_CORRECTIONS = 3;

type Phase = 'idle' | 'gather' | 'sources' | 'reading' | 'outline' | 'section' | 'child' | 'done';

const NEEDS_SOURCES = 'A survey needs sources: add files, pasted text or web pages with "Add sources" (the Draft tab), then send the topic again — or give "sources" in the task as a list of texts or {title, text, authors?, year?, url?}.';

let phase: Phase = 'idle';
let topic = '';
let sources: Source[] = [];
let pendingDocs = 0;
let notes: (SourceNotes | undefined)[] = [];
let outline: Outline | undefined;
let sections: string[] = [];
let convo: Conversation | undefined;
let corrections = 0;
/** In a child: which source it reads. */
let childIndex = 0;

export function describe() {
  return {
    name: 'survey',
    description: 'Drafts a survey from many sources: notes per source (in parallel child agents), an outline, sections with citations, a bibliography.',
    tools: TOOLS,
  };
}

export function step(event: AgentEvent): AgentAction[] {
  return guarded(handle, event);
}

function handle(event: AgentEvent): AgentAction[] {
  switch (event.tag) {
    case 'start': return start(event.val);
    case 'user-message':
      return phase === 'done' || phase === 'idle' ? start(event.val) : [{ tag: 'reply', val: 'I am still drafting the survey; send new instructions when it is done.' }];
    case 'child-results': return phase === 'reading' ? merge(event.val) : [];
    case 'tool-result':
      if (phase === 'sources' && onDocsAdded(sources, event.val)) return --pendingDocs > 0 ? [] : read();
      if (phase === 'gather') return gathered(event.val);
      break;
  }
  const outcome = route(convo, event);
  return outcome ? onOutcome(outcome) : [];
}

function start(text: string): AgentAction[] {
  const task = parseTask(text);
  topic = field(task, 'topic') || field(task, 'task');
  if (topic === '') throw 'The task needs a topic.';
  if (task.mode === 'source-notes') return startChild(task);
  notes = [];
  outline = undefined;
  sections = [];
  if (task.sources === undefined) {
    phase = 'gather';
    sources = [];
    return listDocs();
  }
  sources = parseSources(task.sources);
  if (sources.length === 0) throw NEEDS_SOURCES;
  phase = 'sources';
  pendingDocs = sources.length;
  return addToDocs(sources);
}

/** The sources the person added to docs: listed, then each one's text read, then read by the children. */
function gathered(r: WitToolResult): AgentAction[] {
  if (r.id === DOCS_LIST_ID) {
    // Idle until the sources are known: when there are none, the next message is a new task.
    phase = 'idle';
    sources = sourcesFromList(r);
    if (sources.length === 0) throw NEEDS_SOURCES;
    phase = 'gather';
    pendingDocs = sources.length;
    return readDocs(sources);
  }
  return onDocRead(sources, r) && --pendingDocs === 0 ? read() : [];
}

/** Forks one child per source; each reads its source and returns notes. */
function read(): AgentAction[] {
  phase = 'reading';
  return [{
    tag: 'fork-children',
    val: sources.map((s, i) => ({
      id: `source-${i + 1}`,
      task: JSON.stringify({ mode: 'source-notes', topic, index: i + 1, source: { title: s.title, text: clipText(s.text, SOURCE_PROMPT_CHARS), authors: s.authors, year: s.year } }),
    })),
  }];
}

function startChild(task: Record<string, unknown>): AgentAction[] {
  const source = isRecord(task.source) ? task.source : {};
  const text = field(source, 'text');
  if (text === '') throw 'A source-notes task needs "source" with a "text".';
  childIndex = typeof task.index === 'number' ? task.index : 1;
  phase = 'child';
  corrections = 0;
  convo = new Conversation(
    'You are a careful research assistant. You read one source and take notes that a survey author can rely on: ' +
      'what it claims, how it supports the claims, and what it does not show. Never add facts that are not in the source.',
    TOOLS, `read${childIndex}-`, { maxRounds: 4 },
  );
  return convo.ask([
    `The survey is about: ${topic}`,
    `Source [${childIndex}]: "${field(source, 'title')}"${field(source, 'authors') ? ` by ${field(source, 'authors')}` : ''}\n\n${text}`,
    'Answer with only your notes as JSON in a ```json block:',
    '{"summary": "2-3 sentences", "key_points": ["...", "..."], "methods": "...", "findings": "...", "limitations": "..."}',
  ].join('\n\n'));
}

/** The children's notes, by source number; a child that failed leaves its source without notes. */
function merge(results: readonly ChildResult[]): AgentAction[] {
  notes = sources.map(() => undefined);
  for (const r of results) {
    const n = Number(/^source-(\d+)$/.exec(r.id)?.[1]);
    if (!r.ok || !(n >= 1 && n <= sources.length)) continue;
    try {
      const v: unknown = JSON.parse(r.output);
      if (isRecord(v) && isRecord(v.notes)) notes[n - 1] = v.notes as unknown as SourceNotes;
    } catch {
      // A child whose output is not its notes counts as failed.
    }
  }
  if (notes.every((n) => n === undefined)) {
    phase = 'done';
    return [{ tag: 'reply', val: 'No source could be read, so there is nothing to survey.' }, { tag: 'done', val: 'failed: no source notes' }];
  }
  return planOutline();
}

function digest(): string {
  return sources.map((s, i) => notesDigest(i + 1, s, notes[i])).join('\n\n');
}

function docsHint(): string {
  const mapped = sources.flatMap((s, i) => (s.doc === undefined ? [] : [`[${i + 1}] = docs document ${s.doc}`]));
  return mapped.length === 0 ? '' : `The full texts are searchable with the docs tool (${mapped.join(', ')}).`;
}

function planOutline(): AgentAction[] {
  phase = 'outline';
  corrections = 0;
  convo = new Conversation(
    'You are the author of a survey paper. You organise the literature by theme, not source by source, and you compare and contrast.',
    TOOLS, 'outline-', { maxRounds: 6 },
  );
  return convo.ask([
    `Plan a survey about: ${topic}`,
    `Notes on the ${sources.length} sources:\n\n${digest()}`,
    docsHint(),
    'Answer with only the outline as JSON in a ```json block:',
    '{"title": "...", "sections": [{"heading": "...", "summary": "what the section argues", "sources": [1, 2]}]}',
    'Start with an introduction and end with open problems or a conclusion; every source should appear in some section.',
  ].filter((p) => p !== '').join('\n\n'));
}

function writeSection(i: number): AgentAction[] {
  const o = outline!;
  const section = o.sections[i]!;
  phase = 'section';
  corrections = 0;
  convo = new Conversation(
    'You write survey sections in clear academic prose. Every claim from a source carries its citation as [n]; ' +
      'you do not cite sources for claims they do not make. Search the sources with the docs tool when the notes are not enough.',
    TOOLS, `sec${i + 1}-`, { maxRounds: 8 },
  );
  const relevant = section.sources.length > 0 ? section.sources : sources.map((_, j) => j + 1);
  return convo.ask([
    `Survey: "${o.title}" (about ${topic}).`,
    `Outline:\n${o.sections.map((s, j) => `${j + 1}. ${s.heading} — ${s.summary}`).join('\n')}`,
    `Write section ${i + 1}: "${section.heading}". ${section.summary}`,
    `Notes on its sources:\n\n${relevant.map((n) => notesDigest(n, sources[n - 1]!, notes[n - 1])).join('\n\n')}`,
    docsHint(),
    'Answer with the section text only (no heading), citing as [n].',
  ].filter((p) => p !== '').join('\n\n'));
}

function onOutcome(outcome: Outcome): AgentAction[] {
  if (outcome.kind === 'working') return outcome.actions;
  const answer = outcome.text;
  switch (phase) {
    case 'child': {
      const parsed = parseNotes(answer);
      if (typeof parsed === 'string') return correct(parsed, 'Answer again with only the notes JSON.');
      phase = 'done';
      return [{ tag: 'done', val: JSON.stringify({ index: childIndex, notes: parsed }) }];
    }
    case 'outline': {
      const parsed = parseOutline(answer, sources.length);
      if (typeof parsed === 'string') return correct(parsed, 'Answer again with only the outline JSON.');
      outline = parsed;
      return writeSection(0);
    }
    case 'section': {
      const problem = checkSection(answer, outline!.sections[sections.length]!, sources.length);
      if (problem) return correct(problem, 'Write the section again.');
      sections.push(answer.trim());
      return sections.length < outline!.sections.length ? writeSection(sections.length) : finish();
    }
    default: return [];
  }
}

function correct(problem: string, instruction: string): AgentAction[] {
  if (++corrections > MAX_CORRECTIONS) {
    const what = phase === 'child' ? `notes for source ${childIndex}` : phase === 'outline' ? 'the outline' : `section ${sections.length + 1}`;
    phase = 'done';
    return [{ tag: 'reply', val: `I could not write ${what}: ${problem}` }, { tag: 'done', val: `failed: ${problem}` }];
  }
  return onOutcome(convo!.correct(`${problem} ${instruction}`));
}

function finish(): AgentAction[] {
  phase = 'done';
  convo = undefined;
  const o = outline!;
  const cited = citations(sections.join('\n'));
  const body = o.sections.map((s, i) => `## ${i + 1}. ${s.heading}\n\n${sections[i]}`).join('\n\n');
  const draft = `# ${o.title}\n\n${body}\n\n## References\n\n${bibliography(sources, cited)}\n`;
  const summary = { title: o.title, sections: o.sections.length, sources: sources.length, cited: cited.length, unread: notes.filter((n) => n === undefined).length };
  return [{ tag: 'reply', val: draft }, { tag: 'done', val: JSON.stringify(summary) }];
}
