/**
 * The agent evaluation's workloads: the three seed workloads and the plain assistant, each an agent, the tools it
 * asks for, a task, files to seed its workspace with, the follow-up message sent when it waits for the user, and the
 * checks a script can make of its answers (eval/checks.ts).
 * Sources are written here (no network): short texts with facts a summary can cite.
 */
import { devGuideCheck, podcastCheck, surveyCheck, type Check } from './checks.ts';

export interface Workload {
  readonly name: string;
  readonly agent: string;
  readonly task: string;
  /** Files the workspace tool holds before the run. */
  readonly files?: Readonly<Record<string, string>>;
  readonly followUp: string;
  readonly check?: Check;
}

const FACTS = [
  ['Staten Island Ferry', 'The Staten Island Ferry carries about 70,000 passengers a day between Manhattan and Staten Island, free of charge since 1997.'],
  ['Electric ferries', 'Electric ferries charge their batteries at the dock while passengers board. Norway runs more than seventy of them.'],
  ['Hydrofoils', 'A hydrofoil lifts its hull out of the water on wings, cutting drag; the Meteor class carried passengers on Soviet rivers at 65 km/h.'],
  ['Chain ferries', 'A chain ferry pulls itself along chains laid across a river; the Sandbanks ferry in Dorset has run since 1926.'],
  ['Roll-on roll-off', 'Roll-on/roll-off ferries let vehicles drive aboard; the design spread after the Second World War from tank landing ships.'],
  ['Ferry safety', 'Stability after water enters the car deck is the main risk of ro-ro ferries; rules changed after the Estonia sank in 1994.'],
  ['Istanbul ferries', 'Istanbul ferries cross the Bosphorus between Europe and Asia; the city company has run them since 1851.'],
  ['Hong Kong Star Ferry', 'The Star Ferry has crossed Victoria Harbour since 1888; its fleet of twelve-minute crossings is a listed heritage icon.'],
  ['Fuel use', 'A conventional ferry burns diesel at about 200 grams per kilowatt-hour; hybrid drives recover energy while docking.'],
  ['Ticketing', 'Contactless ticketing cut boarding times on Sydney ferries by a third after Opal cards replaced paper tickets in 2014.'],
  ['Autonomous ferries', 'An autonomous passenger ferry crossed a canal in Trondheim in 2022 with a safety operator on board and no crew at the helm.'],
  ['Harbour pollution', 'Shore power lets docked ferries switch off their engines, removing most of the nitrogen oxides they emit in port.'],
] as const;

function sources(count: number) {
  return FACTS.slice(0, count).map(([title, text]) => ({ title, text }));
}

const WORKSPACE: Record<string, string> = {
  'src/fare.js': [
    '// Fare for a trip: adults pay the base fare, children half, under-fives nothing.',
    'export function fare(base, age) {',
    '  if (age < 5) return 0;',
    '  if (age < 16) return base / 2;',
    '  return base;',
    '}',
    '',
  ].join('\n'),
  'test/fare.test.js': [
    "import { fare } from '../src/fare.js';",
    "if (fare(4, 3) !== 0) throw new Error('under-fives ride free');",
    "if (fare(4, 10) !== 2) throw new Error('children pay half');",
    "if (fare(4, 70) !== 2) throw new Error('seniors pay half');",
    '',
  ].join('\n'),
  'README.md': '# fares\n\nFare rules for the harbour ferry. Seniors (65 and over) should pay half, like children.\n',
};

export { WORKSPACE };

export const WORKLOADS: readonly Workload[] = [
  {
    name: 'dev-guide',
    agent: 'dev-guide',
    task: 'The test in test/fare.test.js fails: seniors should pay half. Find the cause in the workspace and propose a fix as a diff.',
    files: WORKSPACE,
    followUp: 'Check the other files too and tell me what else should change.',
    check: devGuideCheck('src/fare.js', 'test/fare.test.js'),
  },
  {
    name: 'podcast',
    agent: 'podcast',
    task: JSON.stringify({ topic: 'Ferries in modern cities', sources: sources(3) }),
    followUp: 'Write another episode on the same sources.',
    check: podcastCheck,
  },
  {
    name: 'survey',
    agent: 'survey',
    task: JSON.stringify({ topic: 'Passenger ferries', sources: sources(12) }),
    followUp: JSON.stringify({ topic: 'Ferry technology', sources: sources(12) }),
    check: surveyCheck(12),
  },
  {
    name: 'assistant',
    agent: 'assistant',
    task: 'Make a note titled "Ferries" listing three facts about ferries, then read it back to me.',
    followUp: 'Add one more fact to the note.',
  },
];
