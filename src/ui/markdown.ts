/**
 * Markdown for agent output: rendered by marked, then sanitised by DOMPurify (agent text is untrusted). Code blocks
 * get a Copy button (handled by delegation in Markdown.svelte); links open in a new tab without an opener.
 */
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const language = (lang ?? '').match(/^[\w+#.-]{1,32}/)?.[0] ?? '';
      const label = language ? `<span class="lang">${escape(language)}</span>` : '';
      return `<div class="code-block">${label}<button type="button" class="copy" data-copy="">Copy code</button><pre><code${language ? ` class="language-${escape(language)}"` : ''}>${escape(text)}</code></pre></div>`;
    },
  },
});

let hooked = false;
const cache = new Map<string, string>();

export function renderMarkdown(text: string): string {
  const hit = cache.get(text);
  if (hit !== undefined) return hit;
  if (!hooked) {
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    });
    hooked = true;
  }
  const html = DOMPurify.sanitize(marked.parse(text, { async: false }), { ADD_ATTR: ['target'], FORBID_TAGS: ['style', 'form', 'input'] });
  if (cache.size > 2000) cache.clear();
  cache.set(text, html);
  return html;
}
