/**
 * The readable text of an HTML page, with the browser's own parser (DOMParser runs no script and loads nothing):
 * its title, and the text of its main content (or body) with headings, paragraphs and list items on lines of
 * their own; scripts, styles, embedded media and forms dropped.
 */
const DROPPED = 'script, style, noscript, template, svg, math, canvas, iframe, object, embed, video, audio, form, button, select';
const BLOCKS = new Set(['ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'BR', 'DD', 'DIV', 'DL', 'DT', 'FIGCAPTION', 'FIGURE', 'FOOTER', 'HEADER', 'HR', 'MAIN', 'NAV', 'OL', 'P', 'PRE', 'SECTION', 'TABLE', 'TR', 'UL']);

export function htmlToText(html: string): { title: string; text: string } {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const title = doc.title.replace(/\s+/g, ' ').trim();
  for (const el of doc.querySelectorAll(DROPPED)) el.remove();
  const root = doc.querySelector('main') ?? doc.querySelector('article') ?? doc.body;
  let out = '';
  const walk = (node: Node, pre: boolean): void => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const raw = child.textContent ?? '';
        // Outside <pre>, runs of white space are one space, and none at the start of a line.
        out += pre ? raw : raw.replace(/\s+/g, ' ').replace(/^ /, out === '' || /[\n ]$/.test(out) ? '' : ' ');
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        const tag = (child as Element).tagName;
        const heading = /^H([1-6])$/.exec(tag);
        if (heading) out += `\n\n${'#'.repeat(Number(heading[1]))} `;
        else if (tag === 'LI') out += '\n- ';
        else if (tag === 'TD' || tag === 'TH') out += ' | ';
        else if (BLOCKS.has(tag)) out += '\n\n';
        walk(child, pre || tag === 'PRE');
        if (heading || BLOCKS.has(tag)) out += '\n\n';
      }
    }
  };
  if (root) walk(root, false);
  const text = out.split('\n').map((line) => line.trimEnd()).join('\n').replace(/\n{3,}/g, '\n\n').replace(/^\n+|\n+$/g, '');
  return { title, text };
}
