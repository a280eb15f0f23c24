/**
 * Content as the host steps that add it (core/runtime/loop.ts RunInput `tools`): workspace `write` calls for files,
 * docs `add` calls for sources, cut into steps of a few MB so every checkpoint stays small; and, read back from the
 * transcript, what each step added and what its tool refused (with the tool's own reason).
 */
import { HOST_STEP_LIMITS, type HostCall } from '../../core/runtime/loop.ts';
import type { SessionEvent } from '../../core/session/index.ts';
import type { SourceDraft } from './sources.ts';
import type { WorkspaceFile } from './workspace-files.ts';

/** Characters of arguments in one step: half what the loop takes, so a large single call still fits with others. */
const STEP_CHARS = HOST_STEP_LIMITS.argsChars / 2;

export function inSteps(calls: readonly HostCall[]): HostCall[][] {
  const steps: HostCall[][] = [];
  let chars = Infinity;
  for (const call of calls) {
    const last = steps.at(-1);
    if (!last || last.length >= HOST_STEP_LIMITS.calls || chars + call.args.length > STEP_CHARS) {
      steps.push([call]);
      chars = call.args.length;
    } else {
      last.push(call);
      chars += call.args.length;
    }
  }
  return steps;
}

export function workspaceWrites(files: readonly WorkspaceFile[]): HostCall[][] {
  return inSteps(files.map((f) => ({ tool: 'workspace', args: JSON.stringify({ op: 'write', path: f.path, content: f.content }) })));
}

export function docsAdds(sources: readonly SourceDraft[]): HostCall[][] {
  return inSteps(sources.map((s) => ({ tool: 'docs', args: JSON.stringify({ op: 'add', title: s.title, text: s.text, ...(s.url ? { source: s.url } : {}) }) })));
}

export interface HostOutcome {
  /** What was added: file paths, source titles. */
  added: string[];
  refused: { what: string; reason: string }[];
}

/** What the host calls among `events` did (host call ids start "host-"; see loop.ts). */
export function hostOutcome(events: readonly SessionEvent[]): HostOutcome {
  const calls = new Map<string, string>();
  const outcome: HostOutcome = { added: [], refused: [] };
  for (const e of events) {
    if (e.type === 'tool-call' && e.callId.startsWith('host-')) calls.set(e.callId, whatOf(e.args));
    if (e.type === 'tool-result' && calls.has(e.callId)) {
      const what = calls.get(e.callId)!;
      if (e.ok) outcome.added.push(what);
      else outcome.refused.push({ what, reason: e.output });
    }
  }
  return outcome;
}

function whatOf(args: string): string {
  try {
    const a = JSON.parse(args) as { path?: unknown; title?: unknown };
    return typeof a.path === 'string' ? a.path : typeof a.title === 'string' ? a.title : 'content';
  } catch {
    return 'content';
  }
}
