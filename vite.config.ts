import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';
import { pwaManifest } from './src/ui/manifest.ts';

// Cross-origin isolation lets wllama use threads (SharedArrayBuffer); the relay sends the same headers.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  plugins: [
    svelte(),
    VitePWA({
      registerType: 'prompt',
      injectRegister: false,
      manifest: pwaManifest,
      includeAssets: ['icons/*.svg'],
      workbox: {
        // Workers and engine wasm are part of the app shell: precache them so the app works offline.
        globPatterns: ['**/*.{js,css,html,svg,png,ico,wasm,webmanifest}'],
        maximumFileSizeToCacheInBytes: 64 * 1024 * 1024,
        // First install takes control at once; an update waits for the user (registerType 'prompt').
        clientsClaim: true,
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/^\/api\//, /^\/healthz/, /^\/metrics/, /^\/v1\//],
      },
    }),
  ],
  build: { target: 'es2022', sourcemap: true },
  worker: { format: 'es' },
  server: { headers: isolation },
  preview: { headers: isolation },
});
