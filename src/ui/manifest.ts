import type { ManifestOptions } from 'vite-plugin-pwa';

/** The web app manifest: what makes Ferry installable as a standalone app. */
export const pwaManifest: Partial<ManifestOptions> = {
  name: 'Ferry',
  short_name: 'Ferry',
  description: 'Run an AI agent on your own device and move it, live, to wherever it runs best.',
  id: '/',
  start_url: '/',
  scope: '/',
  display: 'standalone',
  orientation: 'any',
  theme_color: '#0f5257',
  background_color: '#f4f1de',
  categories: ['productivity', 'developer'],
  icons: [
    { src: '/icons/ferry-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
    { src: '/icons/ferry-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
    { src: '/icons/ferry-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
    { src: '/icons/ferry.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
  ],
};
