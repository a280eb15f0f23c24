import type { BrowserCommand } from 'vitest/node';

/**
 * Server-side helpers that browser tests call through `commands` from 'vitest/browser'
 * (they run in the Vitest process, with Node APIs and native engines).
 */
export const browserCommands: Record<string, BrowserCommand<never[]>> = {};
