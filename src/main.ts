import { mount } from 'svelte';
import App from './ui/App.svelte';
import { appShell } from './ui/app-shell.svelte.ts';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element to mount Ferry into.');
appShell.start();
mount(App, { target });
