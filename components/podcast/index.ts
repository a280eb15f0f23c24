/**
 * `podcast`: a topic and sources → an outline → each segment as dialogue → one multi-speaker script.
 * The sources go into the docs tool first (so the model can search them for facts while it plans and writes),
 * then each phase is a short conversation with the model whose answer is checked (valid outline JSON; dialogue
 * lines by the cast) and sent back with the problem when it is not — a few times, then the task fails clearly.
 * Task: plain text (the topic) or JSON {topic, sources?: [text | {title, text, url?}], speakers?: [{name, role}]}.
 * Without "sources", the documents the person added to docs (files, pasted text, web pages) are its sources.
 */
import { Conversation, field, guarded, isRecord, parseTask, route, type AgentAction, type AgentEvent, type Outcome } from '../lib/agent-kit.ts';
import { addToDocs, clipText, DOCS_LIST_ID, listDocs, onDocsAdded, parseSources, SOURCE_PROMPT_CHARS, sourcesFromList, type Source } from '../lib/sources.ts';
import { parseLines, parseOutline, renderScript, type Line, type Outline, type Speaker } from './script.ts';

const TOOLS = ['docs', 'notes'];
const MAX_CORRECTIONS = 3;
const DEFAULT_SPEAKERS: Speaker[] = [
  { name: 'Alex', role: 'host: curious, asks the questions a listener would ask' },
  { name: 'Sam', role: 'expert guest: explains with concrete examples' },
];

type Phase = 'idle' | 'gather' | 'sources' | 'outline' | 'segment' | 'done';

let phase: Phase = 'idle';
let topic = '';
let sources: Source[] = [];
let speakers: Speaker[] = DEFAULT_SPEAKERS;
let pendingDocs = 0;
let outline: Outline | undefined;
let segments: Line[][] = [];
let convo: Conversation | undefined;
let corrections = 0;

export function describe() {
  return { name: 'podcast', description: 'Writes a multi-speaker podcast script from a topic and sources: outline, then segment by segment.', tools: TOOLS };
}

export function step(event: AgentEvent): AgentAction[] {
  return guarded(handle, event);
}

function handle(event: AgentEvent): AgentAction[] {
  if (event.tag === 'start') return start(event.val);
  if (event.tag === 'user-message') {
    return phase === 'done' || phase === 'idle' ? start(event.val) : [{ tag: 'reply', val: 'I am still writing the script; I will take new instructions when it is done.' }];
  }
  if (phase === 'sources' && event.tag === 'tool-result' && onDocsAdded(sources, event.val)) {
    return --pendingDocs > 0 ? [] : planOutline();
  }
  // The documents already in docs are searchable as they are: their titles and ids are all the prompts need.
  if (phase === 'gather' && event.tag === 'tool-result' && event.val.id === DOCS_LIST_ID) {
    // Idle until the sources are known: when they cannot be, the next message is a new task.
    phase = 'idle';
    sources = sourcesFromList(event.val);
    return planOutline();
  }
  const outcome = route(convo, event);
  return outcome ? onOutcome(outcome) : [];
}

function start(text: string): AgentAction[] {
  const task = parseTask(text);
  topic = field(task, 'topic') || field(task, 'task');
  if (topic === '') throw 'The task needs a topic.';
  speakers = parseSpeakers(task.speakers);
  outline = undefined;
  segments = [];
  if (task.sources === undefined) {
    phase = 'gather';
    sources = [];
    return listDocs();
  }
  sources = parseSources(task.sources);
  if (sources.length === 0) return planOutline();
  phase = 'sources';
  pendingDocs = sources.length;
  return addToDocs(sources);
}

function parseSpeakers(value: unknown): Speaker[] {
  if (value === undefined) return DEFAULT_SPEAKERS;
  if (!Array.isArray(value) || value.length < 2 || value.length > 6) throw '"speakers" must list 2 to 6 speakers.';
  return value.map((s, i) => {
    if (typeof s === 'string' && s.trim() !== '') return { name: s.trim(), role: i === 0 ? 'host' : 'guest' };
    if (isRecord(s) && field(s, 'name') !== '') return { name: field(s, 'name'), role: field(s, 'role') || (i === 0 ? 'host' : 'guest') };
    throw `Speaker ${i + 1} needs a name.`;
  });
}

function sourceList(): string {
  if (sources.length === 0) return 'No sources were given: rely on well-established knowledge and say so when unsure.';
  return sources.map((s, i) => {
    const where = s.doc === undefined ? `text:\n${clipText(s.text, Math.floor(SOURCE_PROMPT_CHARS / sources.length))}` : `searchable in docs as document ${s.doc}`;
    return `Source ${i + 1}: "${s.title}" — ${where}`;
  }).join('\n');
}

function planOutline(): AgentAction[] {
  phase = 'outline';
  corrections = 0;
  convo = new Conversation(
    'You are the producer of an informative podcast. You plan episodes that are accurate, concrete and easy to follow by ear. ' +
      'Use the docs tool to search the sources for facts, figures and examples before you plan.',
    TOOLS, 'outline-', { maxRounds: 8 },
  );
  return convo.ask([
    `Plan a podcast episode about: ${topic}`,
    `Cast: ${speakers.map((s) => `${s.name} (${s.role})`).join('; ')}.`,
    sourceList(),
    'When you are ready, answer with only the outline as JSON in a ```json block:',
    '{"title": "...", "segments": [{"title": "...", "summary": "what this segment covers", "points": ["fact or example to mention", "..."]}]}',
    'Use 3 to 6 segments: an opening, the substance, and a closing.',
  ].join('\n\n'));
}

function writeSegment(i: number): AgentAction[] {
  const o = outline!;
  const seg = o.segments[i]!;
  phase = 'segment';
  corrections = 0;
  const previous = segments[i - 1]?.slice(-2).map((l) => `${l.speaker}: ${l.text}`).join('\n');
  convo = new Conversation(
    'You write podcast dialogue that sounds natural when spoken: short turns, plain words, concrete examples, no stage directions. ' +
      'Use the docs tool to check facts in the sources when needed.',
    TOOLS, `seg${i + 1}-`, { maxRounds: 6 },
  );
  return convo.ask([
    `Episode: "${o.title}" about ${topic}.`,
    `Outline:\n${o.segments.map((s, j) => `${j + 1}. ${s.title} — ${s.summary}`).join('\n')}`,
    `Now write segment ${i + 1} of ${o.segments.length}: "${seg.title}". ${seg.summary}`,
    seg.points.length > 0 ? `Cover: ${seg.points.join('; ')}.` : '',
    previous ? `The previous segment ended with:\n${previous}` : 'This segment opens the episode: the host welcomes listeners and introduces the guest.',
    i === o.segments.length - 1 ? 'This is the last segment: wrap up and thank the listeners.' : '',
    `Cast: ${speakers.map((s) => `${s.name} (${s.role})`).join('; ')}.`,
    'Answer with the dialogue only, one turn per line, as "NAME: words".',
  ].filter((p) => p !== '').join('\n\n'));
}

function onOutcome(outcome: Outcome): AgentAction[] {
  if (outcome.kind === 'working') return outcome.actions;
  const answer = outcome.text;
  if (phase === 'outline') {
    const parsed = parseOutline(answer);
    if (typeof parsed === 'string') return correct(parsed, 'Answer again with only the outline JSON.');
    outline = parsed;
    return writeSegment(0);
  }
  if (phase === 'segment') {
    const parsed = parseLines(answer, speakers);
    if (typeof parsed === 'string') return correct(parsed, 'Write the segment again.');
    segments.push(parsed);
    if (segments.length < outline!.segments.length) return writeSegment(segments.length);
    return finish();
  }
  return [];
}

function correct(problem: string, instruction: string): AgentAction[] {
  if (++corrections > MAX_CORRECTIONS) {
    const what = phase === 'outline' ? 'the outline' : `segment ${segments.length + 1}`;
    phase = 'done';
    return [{ tag: 'reply', val: `I could not write ${what}: ${problem}` }, { tag: 'done', val: `failed: ${problem}` }];
  }
  return onOutcome(convo!.correct(`${problem} ${instruction}`));
}

function finish(): AgentAction[] {
  phase = 'done';
  convo = undefined;
  const script = renderScript(outline!, speakers, segments);
  const lines = segments.reduce((n, s) => n + s.length, 0);
  const summary = { title: outline!.title, segments: segments.length, lines, speakers: speakers.map((s) => s.name) };
  return [{ tag: 'reply', val: script }, { tag: 'done', val: JSON.stringify(summary) }];
}
