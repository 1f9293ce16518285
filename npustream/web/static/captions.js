// The caption stream of `npustream web` for both pages: /events (Server-Sent Events), turned
// into utterances. Caption text only ever reaches the page through textContent: it is text,
// never markup, whatever it says.
"use strict";

// followCaptions(handlers): calls
//   handlers.reset()                       (re)connected: the session's replay follows
//   handlers.state(state, message)         "connected" | "reconnecting" | "connecting"
//   handlers.utterance(u)                  an utterance changed: u = {key, start, finals, partial, done}
function followCaptions(handlers) {
  const utterances = new Map();
  const source = new EventSource("events");
  source.onopen = () => { utterances.clear(); handlers.reset(); };
  source.onerror = () => handlers.state("reconnecting", "lost the connection to npustream web");
  source.addEventListener("connection", (e) => {
    const body = JSON.parse(e.data);
    handlers.state(body.state, body.message);
  });
  source.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type !== "caption.final" && m.type !== "caption.partial") return;
    const key = m.stream_id + ":" + m.segment_id;
    let u = utterances.get(key);
    if (!u) {
      u = {key: key, start: null, finals: "", partial: "", done: false};
      utterances.set(key, u);
    }
    if (u.start === null && m.start !== null) u.start = m.stream_start + m.start;  // wall clock, s
    if (m.type === "caption.final") {
      if (m.text) u.finals = joinText(u.finals, m.text);
      if (m.segment_end) { u.partial = ""; u.done = true; utterances.delete(key); }
    } else {
      u.partial = m.text;
    }
    handlers.utterance(u);
  };
  return source;
}

// Final texts in order as one text: a text that starts with a mark (a sentence's punctuation,
// held back until the speech after its word told it) continues the word before it, no space.
const MARKS = ".,?!;:。，？！、";
function joinText(before, text) {
  if (!before || !text) return before || text;
  return before + (MARKS.includes(text[0]) ? "" : " ") + text;
}

function clockTime(seconds) {
  const d = new Date(seconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
