/**
 * Which per-template panel a session shows: the template's own (assistant: notes, dev-guide: workspace, podcast:
 * script, survey: draft), or, for a session of an agent this build does not have, the one its events call for. The panels themselves are loaded only when opened.
 */
import type { SessionTemplate, TemplateId } from '../../browser/templates.ts';
import type { TranscriptStep } from '../../core/session/index.ts';
import type { OpenSession } from '../session.svelte.ts';
import { parseDraft } from './draft-view.ts';
import { parseScript } from './script-view.ts';

export type PanelKind = 'workspace' | 'script' | 'draft' | 'notes';

/**
 * What a panel is given: the session, and the steps it shows it as at — the head's, or a past checkpoint's (`past`:
 * then it is read only, and the session itself is unchanged).
 */
export interface PanelProps {
  open: OpenSession;
  steps: readonly TranscriptStep[];
  past: boolean;
}

export const PANEL_NAMES: Record<PanelKind, string> = { workspace: 'Workspace', script: 'Script', draft: 'Draft', notes: 'Notes' };

const BY_TEMPLATE: Partial<Record<TemplateId, PanelKind>> = { assistant: 'notes', 'dev-guide': 'workspace', podcast: 'script', survey: 'draft' };

/** How many of the newest replies are read to guess a panel for a session of unknown template. */
const SNIFF_REPLIES = 8;

export function panelFor(template: SessionTemplate | undefined, steps: readonly TranscriptStep[]): PanelKind | null {
  const own = template && template !== 'unknown' ? BY_TEMPLATE[template] : undefined;
  if (own) return own;
  const replies: string[] = [];
  let notes = false;
  for (const s of steps) {
    for (const e of s.events) {
      if (e.type === 'tool-call' && e.tool === 'workspace') return 'workspace';
      if (e.type === 'tool-call' && e.tool === 'notes') notes = true;
      if (e.type === 'generation' || e.type === 'reply') replies.push(e.text);
    }
  }
  for (const text of replies.slice(-SNIFF_REPLIES).reverse()) {
    if (parseScript(text).segments.length > 0) return 'script';
    const d = parseDraft(text);
    if (d.sections.length > 0 && d.references.length > 0) return 'draft';
  }
  return notes ? 'notes' : null;
}

/** Every event of the steps, oldest first. */
export function allEvents(steps: readonly TranscriptStep[]): TranscriptStep['events'] {
  return steps.flatMap((s) => s.events);
}

/** The agent's texts, oldest first: its generations and its replies (a survey's assembled draft is a reply). */
export function replyTexts(steps: readonly TranscriptStep[]): string[] {
  return steps.flatMap((s) => s.events.flatMap((e) => (e.type === 'generation' || e.type === 'reply' ? [e.text] : [])));
}
