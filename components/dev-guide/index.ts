/**
 * `dev-guide`: software-development guidance over a code workspace. The model explores the files with the
 * workspace tool (list, read, grep), may try code in the js sandbox, and answers; when its answer proposes changes
 * as a unified diff, the agent checks every diff against the workspace (a dry-run patch) before replying, and sends
 * a diff that does not apply back to the model with the tool's explanation — so what the user gets applies.
 */
import { chatAgent } from '../lib/chat-agent.ts';
import { toolJson, type AgentAction } from '../lib/agent-kit.ts';

const TOOLS = ['workspace', 'js', 'notes'];
/** Attempts the model gets to fix a diff that does not apply before the answer goes out with a warning. */
const MAX_FIXES = 2;

const SYSTEM = [
  'You are a senior software engineer guiding a developer through the code in their workspace.',
  'Ground every statement in the code: list the files, read the relevant ones and grep for usages before you answer;',
  'never guess at code you have not read. Explain the why briefly, point to files and line numbers,',
  'and mention risks and tests worth adding.',
  'When you propose a change, include it as one unified diff in a ```diff block, with "--- a/<path>" and "+++ b/<path>"',
  'headers and hunks whose context lines are copied exactly from the files (the workspace "diff" op can compute one for you).',
  'The diff is checked against the workspace before the developer sees it. Do not apply it yourself unless asked.',
].join(' ');

/** The ```diff (or ```patch) blocks of an answer. */
function proposedDiffs(answer: string): string[] {
  const out: string[] = [];
  for (const m of answer.matchAll(/```(?:diff|patch)[^\n]*\n([\s\S]*?)```/g)) if (m[1]!.includes('@@')) out.push(m[1]!);
  return out;
}

let answer = '';
let checks = new Map<string, string | null>();
let fixes = 0;
let checkSeq = 0;

const step = chatAgent({
  system: SYSTEM,
  tools: TOOLS,
  turn: { maxRounds: 16 },
  review: {
    start(text) {
      const diffs = proposedDiffs(text);
      if (diffs.length === 0) { fixes = 0; return undefined; }
      answer = text;
      checks = new Map();
      return diffs.map((diff): AgentAction => {
        const id = `check-${++checkSeq}`;
        checks.set(id, null);
        return { tag: 'call-tool', val: { id, name: 'workspace', args: JSON.stringify({ op: 'patch', diff, dry_run: true }) } };
      });
    },
    onEvent(event, convo) {
      if (event.tag !== 'tool-result' || !checks.has(event.val.id)) return { actions: [] };
      const r = event.val;
      checks.set(r.id, r.ok && toolJson(r.output)?.applies === true ? '' : r.output);
      if ([...checks.values()].includes(null)) return { actions: [] };
      const failures = [...checks.values()].filter((v) => v !== '') as string[];
      if (failures.length === 0) {
        fixes = 0;
        return { reply: `${answer}\n\n✓ Checked: the proposed diff applies cleanly to the workspace.` };
      }
      if (/There is no tool "workspace"/.test(failures[0]!)) {
        return { reply: `${answer}\n\n(The diff could not be checked: this session has no workspace tool.)` };
      }
      if (fixes >= MAX_FIXES) {
        fixes = 0;
        return { reply: `${answer}\n\n⚠ This diff does not apply to the workspace as it is: ${failures[0]}` };
      }
      fixes++;
      return {
        retry: convo.correct(`Your proposed diff does not apply to the workspace:\n${failures.join('\n')}\n` +
          'Read the affected files again and answer again with a corrected diff (or use the workspace "diff" op to compute it).'),
      };
    },
  },
});

export function describe() {
  return {
    name: 'dev-guide',
    description: 'Software-development guidance over a code workspace: reads and searches the code, explains, and proposes changes as diffs checked to apply.',
    tools: TOOLS,
  };
}

export { step };
