// The transcript page: one row per utterance (its start time, final words, the partial tail
// rewritten in place); the page stays at the newest row unless the reader scrolled up.
"use strict";

const transcript = document.getElementById("transcript");
const stateBadge = document.getElementById("state");
const rows = new Map();

function atBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
}

followCaptions({
  reset() { rows.clear(); transcript.replaceChildren(); },
  state(state, message) {
    stateBadge.className = "state " + state;
    stateBadge.textContent = state === "connected" ? "live" : state + "…";
    stateBadge.title = message;
  },
  utterance(u) {
    const follow = atBottom();
    let row = rows.get(u.key);
    if (!row) {
      row = document.createElement("p");
      row.className = "utterance";
      const time = document.createElement("time");
      const finals = document.createElement("span");
      finals.className = "final";
      const partial = document.createElement("span");
      partial.className = "partial";
      row.append(time, finals, partial);
      transcript.append(row);
      rows.set(u.key, row);
    }
    if (!u.finals && !u.partial) {  // an utterance whose words all went away
      row.remove();
      rows.delete(u.key);
      return;
    }
    const [time, finals, partial] = row.children;
    time.textContent = u.start === null ? "" : clockTime(u.start);
    finals.textContent = u.finals;
    partial.textContent = u.partial ? (u.finals ? " " : "") + u.partial : "";
    row.classList.toggle("open", !u.done);
    if (u.done) rows.delete(u.key);
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  },
});
