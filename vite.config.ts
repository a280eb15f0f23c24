import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';
import { pwaManifest } from './src/ui/manifest.ts';

// Cross-origin isolation lets wllama use threads (SharedArrayBuffer); the relay sends the same headers.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

const componentsDist = path.resolve(import.meta.dirname, 'components', 'dist');

/** Every built component file (components/dist/<name>/<file>), as the path the PWA serves it at: components/<name>/<file>. */
function componentFiles(): { url: string; file: string }[] {
  const out: { url: string; file: string }[] = [];
  for (const dir of readdirSync(componentsDist, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(path.join(componentsDist, dir.name))) out.push({ url: `components/${dir.name}/${f}`, file: path.join(componentsDist, dir.name, f) });
  }
  return out;
}

/**
 * The agent and tool components the agent worker runs, served as static files of the PWA (so they are precached
 * and work offline) at the same bytes the relay's cloud worker loads: a session's component ids pin those bytes.
 */
function builtComponents(): Plugin {
  return {
    name: 'ferry-components',
    configureServer(server) {
      server.middlewares.use('/components/', (req, res, next) => {
        const rel = decodeURIComponent((req.url ?? '').split('?')[0]!).replace(/^\/+/, '');
        const hit = componentFiles().find((c) => c.url === `components/${rel}`);
        if (!hit) return next();
        res.setHeader('Content-Type', hit.file.endsWith('.wasm') ? 'application/wasm' : hit.file.endsWith('.js') ? 'text/javascript' : 'application/json');
        res.end(readFileSync(hit.file));
      });
    },
    generateBundle() {
      let files: { url: string; file: string }[];
      try {
        files = componentFiles();
      } catch {
        this.error('components/dist is missing: run `npm run build:components` before `vite build`.');
      }
      for (const c of files) this.emitFile({ type: 'asset', fileName: c.url, source: readFileSync(c.file) });
    },
  };
}

/** A stable name for web-llm's chunk (≈6 MB, for WebGPU devices only), so the service worker can leave it out of the precache by name. */
function chunkFileNames(chunk: { moduleIds: readonly string[] }): string {
  if (chunk.moduleIds.some((id) => id.includes('/@mlc-ai/web-llm/'))) return 'assets/web-llm-[hash].js';
  return chunk.moduleIds.some((id) => id.includes('/@wllama/wllama/')) ? 'assets/wllama-webgpu-[hash].js' : 'assets/[name]-[hash].js';
}

/** wllama 3 (llama.cpp's WebGPU backend, ≈9 MB of wasm) gets a name of its own, like web-llm, to keep it out of the precache. */
function assetFileNames(asset: { originalFileNames?: readonly string[] }): string {
  return asset.originalFileNames?.some((name) => name.includes('@wllama/wllama/')) ? 'assets/wllama-webgpu-[hash][extname]' : 'assets/[name]-[hash][extname]';
}
const output = { chunkFileNames, assetFileNames };

export default defineConfig({
  plugins: [
    svelte(),
    builtComponents(),
    VitePWA({
      registerType: 'prompt',
      injectRegister: false,
      manifest: pwaManifest,
      includeAssets: ['icons/*.svg'],
      workbox: {
        // The precache is the app shell: the page's code and styles, the agent and tool workers, the icons and the
        // components' manifests (small; they pin every component file by SHA-256). What only some devices or some
        // sessions run is fetched on first use and cached then (below), so it works offline from that use on.
        globPatterns: ['**/*.{js,css,html,svg,png,ico,webmanifest}', 'components/**/*.json'],
        globIgnores: ['components/**/*.js', '**/web-llm-*.js', '**/wllama-webgpu-*', '**/pdf-*.js', '**/pdf.worker*', '**/node.worker-*.js'],
        runtimeCaching: [
          // Hashed build files fetched on first use: the CPU engine's wasm (one of two builds, by thread support), the
          // GPU engines (web-llm ≈6 MB, wllama 3 ≈9 MB, WebGPU devices only), PDF.js and its worker, the node worker.
          { urlPattern: /\/assets\/web-llm-[^/]+\.js$/, handler: 'CacheFirst', options: { cacheName: 'ferry-web-llm', expiration: { maxEntries: 4 } } },
          { urlPattern: /\/assets\/wllama-webgpu-[^/]+\.(js|wasm)$/, handler: 'CacheFirst', options: { cacheName: 'ferry-wllama-webgpu', expiration: { maxEntries: 4 } } },
          { urlPattern: /\/assets\/[^/]+-[\w-]{8}\.(wasm|js|mjs)$/, handler: 'CacheFirst', options: { cacheName: 'ferry-assets', expiration: { maxEntries: 32 } } },
          // A template's components, when a session of it first runs: each file is asked for by its SHA-256
          // (template-components.ts), so a cached copy is always the right one.
          { urlPattern: /\/components\/[^/]+\/[^/?]+\?sha256=[0-9a-f]{64}$/, handler: 'CacheFirst', options: { cacheName: 'ferry-components', expiration: { maxEntries: 160 } } },
        ],
        maximumFileSizeToCacheInBytes: 64 * 1024 * 1024,
        // First install takes control at once; an update waits for the user (registerType 'prompt').
        clientsClaim: true,
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/^\/api\//, /^\/healthz/, /^\/metrics/, /^\/v1\//, /^\/components\//],
      },
    }),
  ],
  build: {
    target: 'es2022',
    sourcemap: true,
    rollupOptions: { output },
  },
  // The agent worker loads the GPU engines too (its own bundles): the same names keep those copies out of the precache as well.
  worker: { format: 'es', rollupOptions: { output } },
  server: { headers: isolation },
  preview: { headers: isolation },
});
