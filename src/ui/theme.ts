import type { Settings } from '../browser/settings.ts';

/** Light, dark or the system's: the colours follow `data-theme` on the root (see global.css), native controls color-scheme. */
export function applyTheme(theme: Settings['theme']): void {
  const root = document.documentElement;
  root.style.colorScheme = theme === 'system' ? 'light dark' : theme;
  root.dataset.theme = theme;
  try {
    localStorage.setItem('ferry-theme', theme);
  } catch {
    // Storage may be disabled; the theme still applies for this visit.
  }
}
