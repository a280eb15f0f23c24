// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.cache/', 'src/browser/llm/llama-wasm/ferry-llama*.js', 'bench/results/', 'test-results/', 'components/**/dist/', 'dev-dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs.recommended,
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'] } },
  },
  {
    // House rule: the core is isomorphic. Web-standard APIs only; it never reaches into adapters.
    files: ['src/core/**/*.ts'],
    languageOptions: { globals: { ...globals['shared-node-browser'], crypto: 'readonly' } },
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*'], message: 'src/core is isomorphic: use Web-standard APIs, not Node built-ins.' },
          { group: ['**/browser/**', '**/ui/**', '**/workers/**', '**/server/**', '**/test/**'],
            message: 'src/core must not import adapters, the UI, workers or the server (adapters depend on the core).' },
          { group: ['svelte', 'svelte/*', 'idb', 'better-sqlite3', 'node-llama-cpp', '@wllama/*', '@mlc-ai/*', 'fastify', '@fastify/*'],
            message: 'src/core must not depend on a platform-specific library; put it in an adapter.' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'window', message: 'src/core runs in workers and Node: use globalThis.' },
        { name: 'document', message: 'src/core has no DOM.' },
        { name: 'localStorage', message: 'src/core has no DOM storage; use a Store.' },
        { name: 'Buffer', message: 'src/core uses Uint8Array, not Buffer.' },
        { name: 'process', message: 'src/core has no process; pass configuration in.' },
        { name: 'require', message: 'src/core is ES modules only.' },
      ],
    },
  },
);
