/**
 * The agent evaluation's checks of answer quality that a script can decide on any model, each a figure:
 *   dev-guide  the fix the agent proposed (its diffs, applied as the developer would) or made patches the workspace,
 *              and the workspace's own test then passes (run in the js tool's sandbox, never in Node);
 *   survey     every claim of a finished draft cites a real source as [n];
 *   podcast    a finished script follows the outline the model planned: every segment, in order, with dialogue that
 *              covers the segment's planned points.
 * On the generated random-weight model these mostly measure failure (no finished draft or script, no fix): that is
 * expected, and why tool_call_valid_ratio stays the check CI holds.
 */
import { parseOutline as parsePodcastOutline, type Outline } from '../components/podcast/script.ts';
import type { ToolHost } from '../src/core/runtime/index.ts';

/** What a workload's run left for its checks. */
export interface RunRecord {
  readonly tools: readonly ToolHost[];
  /** The model's generations (tool calls included) and the agent's replies to the user, in the order they came. */
  readonly events: readonly { readonly kind: 'generation' | 'reply'; readonly text: string }[];
  /** The files the workspace was seeded with. */
  readonly seeded: Readonly<Record<string, string>>;
}

const repliesOf = (run: RunRecord): string[] => run.events.filter((e) => e.kind === 'reply').map((e) => e.text);

export type Check = (run: RunRecord) => Promise<Record<string, number>>;

/** The ```diff blocks of an answer (as the dev-guide agent finds them). */
function proposedDiffs(text: string): string[] {
  return [...text.matchAll(/```(?:diff|patch)[^\n]*\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((d) => d.includes('@@'));
}

async function call(tool: ToolHost, args: Record<string, unknown>): Promise<{ ok: boolean; output: string }> {
  return tool.invoke(JSON.stringify(args));
}

/**
 * Applies the diffs of the agent's last reply that proposes any, reads the workspace back, and runs its test against
 * it in the sandbox. `file` is the source the seeded test exercises; `test` the test file.
 */
export function devGuideCheck(file: string, test: string): Check {
  return async (run) => {
    const workspace = run.tools.find((t) => t.info.name === 'workspace');
    const js = run.tools.find((t) => t.info.name === 'js');
    if (!workspace || !js) throw new Error('the dev-guide check needs the workspace and js tools');
    const answer = repliesOf(run).reverse().find((r) => proposedDiffs(r).length > 0);
    let applied = 0;
    for (const diff of answer ? proposedDiffs(answer) : []) if ((await call(workspace, { op: 'patch', diff })).ok) applied++;
    const read = async (path: string): Promise<string | undefined> => {
      const r = await call(workspace, { op: 'read', path });
      return r.ok ? (JSON.parse(r.output) as { content: string }).content : undefined;
    };
    const source = await read(file);
    const testCode = await read(test);
    const patched = source !== undefined && source.trimEnd() !== run.seeded[file]?.trimEnd();
    let passes = false;
    if (source !== undefined && testCode !== undefined) {
      // One script: the module's code without `export`, then the test without its imports (the sandbox has no modules).
      const code = `${source.replace(/^export\s+/gm, '')}\n${testCode.replace(/^import .*$/gm, '')}\n'passed'`;
      await call(js, { op: 'reset' });
      const result = await call(js, { op: 'eval', code, budget: 1_000_000 });
      passes = result.ok && result.output.includes('passed');
    }
    return { dev_guide_diffs_applied: applied, dev_guide_patched: patched ? 1 : 0, dev_guide_tests_pass: passes ? 1 : 0 };
  };
}

/** The finished survey drafts (the agent's final reply: a title, sections and a References list). */
function surveyDrafts(replies: readonly string[]): string[] {
  return replies.filter((r) => /^# /.test(r) && /\n## References\n/.test(r));
}

/**
 * Claims are the body's sentences of five words or more (headings and the references left out); a claim is cited when
 * it carries [n] (or [n, m]) with every n a real source number.
 */
export function surveyCheck(sourceCount: number): Check {
  return async (run) => {
    let claims = 0;
    let cited = 0;
    const drafts = surveyDrafts(repliesOf(run));
    for (const draft of drafts) {
      const body = draft.slice(0, draft.indexOf('\n## References\n')).split('\n').filter((l) => !/^#/.test(l)).join(' ');
      for (const sentence of body.split(/(?<=[.!?])\s+(?=[A-Z[])/)) {
        if (sentence.split(/\s+/).filter((w) => /\w/.test(w)).length < 5) continue;
        claims++;
        const refs = [...sentence.matchAll(/\[(\d+(?:\s*[,;–-]\s*\d+)*)\]/g)].flatMap((m) => m[1]!.split(/\s*[,;–-]\s*/).map(Number));
        if (refs.length > 0 && refs.every((n) => n >= 1 && n <= sourceCount)) cited++;
      }
    }
    return { survey_drafts: drafts.length, survey_claims: claims, survey_claims_cited_ratio: claims === 0 ? 0 : cited / claims };
  };
}

/** Words worth matching: lowercase, four letters or more. */
const words = (text: string): Set<string> => new Set(text.toLowerCase().match(/[a-z0-9]{4,}/g) ?? []);

/**
 * For each finished script, the outline the model planned last before it: every segment must appear, in order, with
 * dialogue; a planned point is covered when half its words or more are spoken in its segment. The ratio is covered
 * points (a segment without points counts as one, covered when it has dialogue) over planned ones.
 */
export const podcastCheck: Check = async (run) => {
  let outline: Outline | undefined;
  let scripts = 0;
  let planned = 0;
  let covered = 0;
  for (const event of run.events) {
    if (event.kind === 'generation') {
      const parsed = parsePodcastOutline(event.text);
      if (typeof parsed !== 'string') outline = parsed;
      continue;
    }
    const script = event.text;
    if (!/^# /.test(script) || !/\n## 1\. /.test(script) || !outline) continue;
    scripts++;
    const parts = script.split(/\n## (?=\d+\. )/).slice(1);
    outline.segments.forEach((segment, i) => {
      const part = parts[i] ?? '';
      const heading = part.slice(0, part.indexOf('\n'));
      const inOrder = heading === `${i + 1}. ${segment.title}`;
      const spoken = words(part.split('\n').filter((l) => /^\*\*[^*]+:\*\*/.test(l)).join(' '));
      const points = segment.points.length > 0 ? segment.points : [''];
      for (const point of points) {
        planned++;
        const want = [...words(point)];
        if (inOrder && spoken.size > 0 && want.filter((w) => spoken.has(w)).length * 2 >= want.length) covered++;
      }
    });
  }
  return { podcast_scripts: scripts, podcast_outline_points: planned, podcast_outline_followed_ratio: planned === 0 ? 0 : covered / planned };
};
