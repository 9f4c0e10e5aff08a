// graymesh console: live updates and small form helpers. Everything works
// without this script (plain links and forms); it only keeps the page
// current. Loaded as a file: the Content-Security-Policy allows no inline
// script.
'use strict';

(function () {
  const status = document.getElementById('live-status');
  const say = (text) => { if (status && status.textContent !== text) status.textContent = text; };
  const focusKey = (el) => el.id ? '#' + el.id : el.tagName + ' ' + (el.getAttribute('href') || el.getAttribute('name') || '') + ' ' + el.textContent.trim();

  // Live regions: [data-live-src] is replaced, every data-live-every ms
  // (default 2000), by the server-rendered fragment at that URL. Polling
  // pauses while the tab is hidden.
  document.querySelectorAll('[data-live-src]').forEach((region) => {
    const src = region.getAttribute('data-live-src');
    const every = Number(region.getAttribute('data-live-every')) || 2000;
    let last = '';
    let busy = false;
    let timer = 0;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const resp = await fetch(src, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'text/html' } });
        if (resp.status === 401) {
          clearInterval(timer);
          say('Live updates stopped: the session ended. Reload to log in again.');
          return;
        }
        if (!resp.ok) {
          say('Live update failed: HTTP ' + resp.status);
          return;
        }
        const html = await resp.text();
        if (html !== last) {
          // Keep the keyboard focus on the same control across a refresh:
          // by its id, else by what it is (a link's target and text).
          const focused = document.activeElement;
          const key = focused && region.contains(focused) ? focusKey(focused) : '';
          region.innerHTML = html; // html/template output from the console itself
          last = html;
          if (key) {
            const again = [...region.querySelectorAll('a, button, input, select, textarea, [tabindex]')].find((el) => focusKey(el) === key);
            if (again) again.focus();
          }
        }
        // Announce only a change of state (a failure, or the recovery from
        // one), not every refresh: the footer is a live region.
        say('Live');
      } catch (e) {
        say('Live update failed: graymesh did not answer');
      } finally {
        busy = false;
      }
    };
    timer = setInterval(tick, every);
  });

  // A declared rollback needs a reason.
  document.querySelectorAll('input[data-needs-reason]').forEach((box) => {
    const reason = document.getElementById(box.getAttribute('data-needs-reason'));
    if (!reason) return;
    const wasRequired = reason.required;
    const sync = () => { reason.required = wasRequired || box.checked; };
    box.addEventListener('change', sync);
    sync();
  });
})();
