/** The session templates this build offers: each is an agent component with its tools (template-components.ts). */
export const TEMPLATE_IDS = ['assistant', 'dev-guide', 'podcast', 'survey'] as const;
export type TemplateId = (typeof TEMPLATE_IDS)[number];

export const TEMPLATES: Record<TemplateId, { name: string; description: string }> = {
  assistant: { name: 'Assistant', description: 'A plain chat assistant.' },
  'dev-guide': { name: 'Dev guide', description: 'Software-development guidance over a code workspace.' },
  podcast: { name: 'Podcast', description: 'A podcast script with speakers and segments.' },
  survey: { name: 'Survey', description: 'A survey paper drafted over many sources.' },
};

/**
 * A catalogued session's template: one of ours, or 'unknown' for a session whose agent this build does not have
 * (imported from another version of Ferry, or written without an agent): it can be read, not continued.
 */
export type SessionTemplate = TemplateId | 'unknown';

export function templateName(template: SessionTemplate): string {
  return template === 'unknown' ? 'Unknown agent' : TEMPLATES[template].name;
}
