// examples/laravel/resources/js/app.js — the lines the application's Vite entry point gains.
// resources/js/vendor/pollgate.js is a copy of pollgate's web/pollgate.js (one file, no dependencies).
// Livewire 3 starts Alpine itself; `alpine:init` fires before it does, which is when Alpine.data must run.
import { watch } from './vendor/pollgate.js';
import { registerPollgate } from './pollgate-livewire.js';

document.addEventListener('alpine:init', () => registerPollgate(window.Alpine, watch));
