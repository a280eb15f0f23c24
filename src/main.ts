import { mount } from 'svelte';
import './ui/global.css';
import App from './ui/App.svelte';
import { appShell } from './ui/app-shell.svelte.ts';
import { ui } from './ui/app.svelte.ts';
import { router } from './ui/router.svelte.ts';
import { sharedLink } from './ui/shared-link.svelte.ts';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element to mount Ferry into.');

// Apply the saved theme before the first paint (the settings in IndexedDB are the source; this is their mirror).
try {
  const theme = localStorage.getItem('ferry-theme');
  if (theme === 'light' || theme === 'dark') {
    document.documentElement.style.colorScheme = theme;
    document.documentElement.dataset.theme = theme;
  }
} catch {
  // Storage disabled: the system theme applies.
}

appShell.start();
// A share link's key leaves the address bar before anything else runs.
await sharedLink.takeFromLocation();
router.start();
mount(App, { target });
void ui.start().then(() => {
  document.documentElement.dataset.ready = 'true';
  performance.mark('ferry-interactive');
});
