/**
 * The agent evaluation's answer checks (eval/checks.ts) on answers written here, with the real workspace and js
 * tools: a proposed fix that makes the seeded test pass, one that does not, and none; survey drafts with every claim
 * cited, some, or citing a source that does not exist; a podcast script that follows its outline and one that does not.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { devGuideCheck, podcastCheck, surveyCheck, type RunRecord } from '../../../eval/checks.ts';
import { WORKSPACE } from '../../../eval/workloads.ts';
import type { ToolHost } from '../../../src/core/runtime/index.ts';
import { BUILD_TIMEOUT, tool } from './built.ts';

const reply = (text: string) => ({ kind: 'reply' as const, text });
const generation = (text: string) => ({ kind: 'generation' as const, text });

/** Fresh tools with the dev-guide workload's files. */
async function devTools(): Promise<ToolHost[]> {
  const workspace = await tool('workspace');
  for (const [path, content] of Object.entries(WORKSPACE)) await workspace.invoke(JSON.stringify({ op: 'write', path, content }));
  return [workspace, await tool('js')];
}

const FIX = [
  '```diff',
  '--- a/src/fare.js',
  '+++ b/src/fare.js',
  '@@ -3,4 +3,5 @@',
  '   if (age < 5) return 0;',
  '   if (age < 16) return base / 2;',
  '+  if (age >= 65) return base / 2;',
  '   return base;',
  ' }',
  '```',
].join('\n');

describe('eval checks', () => {
  beforeAll(async () => {
    await Promise.all([tool('workspace'), tool('js')]);
  }, BUILD_TIMEOUT);

  it('dev-guide: the proposed fix patches the workspace and its test passes in the sandbox', async () => {
    const check = devGuideCheck('src/fare.js', 'test/fare.test.js');
    const run = (tools: ToolHost[], events: RunRecord['events']): Promise<Record<string, number>> => check({ tools, events, seeded: WORKSPACE });
    expect(await run(await devTools(), [reply('The senior branch is missing.\n\n' + FIX)])).toEqual({ dev_guide_diffs_applied: 1, dev_guide_patched: 1, dev_guide_tests_pass: 1 });
    const wrong = FIX.replace('age >= 65', 'age >= 95');
    expect(await run(await devTools(), [reply(wrong)])).toEqual({ dev_guide_diffs_applied: 1, dev_guide_patched: 1, dev_guide_tests_pass: 0 });
    expect(await run(await devTools(), [reply('I could not find the cause.')])).toEqual({ dev_guide_diffs_applied: 0, dev_guide_patched: 0, dev_guide_tests_pass: 0 });
  });

  it('survey: the share of a finished draft\'s claims that cite real sources', async () => {
    const draft = (body: string) => reply(`# Ferries\n\n## 1. Intro\n\n${body}\n\n## References\n\n[1] A.`);
    const check = surveyCheck(3);
    const run = (events: RunRecord['events']) => check({ tools: [], events, seeded: {} });
    expect(await run([draft('Electric ferries charge at the dock while people board [1]. Chain ferries pull themselves along chains [2, 3].')])).toEqual({ survey_drafts: 1, survey_claims: 2, survey_claims_cited_ratio: 1 });
    expect(await run([draft('Electric ferries charge at the dock while people board [1]. Chain ferries pull themselves along chains. Short one [2].')])).toMatchObject({ survey_claims: 2, survey_claims_cited_ratio: 0.5 });
    expect(await run([draft('Electric ferries charge at the dock while people board [4].')])).toMatchObject({ survey_claims_cited_ratio: 0 });
    expect(await run([reply('I could not write the outline: bad JSON')])).toEqual({ survey_drafts: 0, survey_claims: 0, survey_claims_cited_ratio: 0 });
  });

  it('podcast: a script follows the outline planned before it when every segment is there, in order, covering its points', async () => {
    const outline = generation('```json\n{"title": "Ferries", "segments": [{"title": "Welcome", "summary": "", "points": []}, {"title": "Electric ferries", "summary": "", "points": ["batteries charge at the dock"]}]}\n```');
    const script = (second: string) =>
      reply(`# Ferries\n\n- **Alex** — host\n\n## 1. Welcome\n\n**Alex:** Welcome to the show.\n\n**Sam:** Glad to be here.\n\n## 2. Electric ferries\n\n${second}\n`);
    const run = (events: RunRecord['events']) => podcastCheck({ tools: [], events, seeded: {} });
    expect(await run([outline, script('**Sam:** Their batteries charge at every dock.\n\n**Alex:** Neat.')])).toEqual({ podcast_scripts: 1, podcast_outline_points: 2, podcast_outline_followed_ratio: 1 });
    expect(await run([outline, script('**Sam:** Diesel engines are loud.\n\n**Alex:** Yes.')])).toMatchObject({ podcast_outline_followed_ratio: 0.5 });
    expect(await run([outline])).toEqual({ podcast_scripts: 0, podcast_outline_points: 0, podcast_outline_followed_ratio: 0 });
  });
});
