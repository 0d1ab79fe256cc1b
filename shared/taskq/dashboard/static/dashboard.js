// taskq dashboard: the little that helps in a browser. Every page works without it.
"use strict";

// Forms marked data-confirm ask before they change anything.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The DLQ table's "select all" box ticks every message shown.
document.addEventListener("change", (event) => {
  if (event.target.id !== "select-all") return;
  for (const box of document.querySelectorAll("#dlq tbody input[name=id]")) {
    box.checked = event.target.checked;
  }
});

// The overview re-reads its figures every few seconds while the tab is visible.
function startLiveRefresh() {
  const live = document.getElementById("live");
  if (!live) return;
  const url = live.getAttribute("data-refresh-url");
  const seconds = Math.max(5, Number(live.getAttribute("data-refresh-s")) || 5);
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        // The server renders this part with the page's own (escaping) template.
        live.innerHTML = await response.text();
        live.setAttribute("data-updated", new Date().toISOString());
      }
    } catch (error) {
      // Offline for a moment: the next tick tries again.
    } finally {
      busy = false;
    }
  }
  window.setInterval(refresh, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", startLiveRefresh);
