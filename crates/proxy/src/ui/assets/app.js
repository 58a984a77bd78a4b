// scimtrail's UI: the few things a page cannot do without a script. Everything shown comes
// from the server as escaped HTML; nothing here builds markup from recorded values.
"use strict";

// Live mode: every two seconds, ask for the rows newer than the newest shown, with the same
// filters, and put them on top.
function startLive(box) {
  const rows = document.getElementById("rows");
  if (!rows) return;
  let timer = null;
  const poll = async () => {
    const newest = rows.querySelector("tr[data-id]");
    const after = newest ? newest.getAttribute("data-id") : "";
    const query = box.getAttribute("data-query");
    const url = "/ui/exchanges/rows?" + query + (query ? "&" : "") + "after=" + encodeURIComponent(after);
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { accept: "text/html" } });
      if (answer.ok) {
        const html = await answer.text();
        if (html.trim()) {
          rows.insertAdjacentHTML("afterbegin", html);
          for (const row of rows.querySelectorAll("tr.fresh")) row.classList.remove("fresh");
        }
        box.parentElement.classList.remove("stalled");
      } else if (answer.status === 401) {
        // The session ended: stop asking, and say so.
        box.parentElement.classList.add("logged-out");
        box.checked = false;
        clearInterval(timer);
        timer = null;
      } else {
        box.parentElement.classList.add("stalled");
      }
    } catch (_) {
      box.parentElement.classList.add("stalled");
    }
  };
  const toggle = () => {
    if (box.checked && !timer) {
      poll();
      timer = setInterval(poll, 2000);
    } else if (!box.checked && timer) {
      clearInterval(timer);
      timer = null;
    }
  };
  box.addEventListener("change", toggle);
  toggle();
}

// "Copy" buttons: copy the text of the element they name.
function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) startLive(live);
  copyButtons();
});
