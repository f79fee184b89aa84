// The console works without script; this only adds confirmations and the print button.
// Served from 'self' (the CSP forbids inline script), so no handler attributes are used.
'use strict';
document.addEventListener('submit', (ev) => {
  const f = ev.target;
  if (f instanceof HTMLFormElement && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
});
document.addEventListener('DOMContentLoaded', () => {
  const p = document.getElementById('print-button');
  if (p) p.addEventListener('click', () => window.print());
});
