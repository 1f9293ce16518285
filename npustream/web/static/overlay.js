// The overlay: the newest `lines` lines of captions in a box; options as URL query parameters
// (see the README): lines, size, color, bg, font, position, align, width, partials, clear, status.
// Styles are set through the CSSOM (element.style), so a value the browser does not accept
// as a colour or font is ignored, never inserted as markup or CSS text.
"use strict";

const params = new URLSearchParams(location.search);
function number(name, fallback, low, high) {
  const v = Number(params.get(name));
  return params.has(name) && Number.isFinite(v) ? Math.min(high, Math.max(low, v)) : fallback;
}
const options = {
  lines: Math.round(number("lines", 2, 1, 10)),
  size: number("size", 48, 8, 300),          // px
  width: number("width", 90, 10, 100),       // % of the page
  partials: params.get("partials") !== "0",
  clear: number("clear", 0, 0, 3600),        // s without captions before the box empties; 0: never
  status: params.get("status") === "1",     // show "reconnecting" in a corner
};
const box = document.getElementById("box");
const captions = document.getElementById("captions");
const stateBadge = document.getElementById("state");
const lineHeight = 1.25;  // overlay.css: font: ... 48px/1.25
box.style.fontSize = options.size + "px";
box.style.width = options.width + "%";
document.getElementById("lines").style.height = options.lines * lineHeight * options.size + "px";
if (params.has("color")) box.style.color = params.get("color");
if (params.has("bg")) box.style.background = params.get("bg");
if (params.has("font")) box.style.fontFamily = params.get("font");
const align = params.get("align");
if (["left", "center", "right"].includes(align)) box.style.textAlign = align;
const position = {top: "flex-start", middle: "center", bottom: "flex-end"}[params.get("position")];
if (position) document.body.style.justifyContent = position;

const recent = [];  // the newest utterances (enough to fill the box)
let clearTimer = null;

function render() {
  const parts = [];
  for (const u of recent) {
    if (u.finals) parts.push([u.finals, "final"]);
    if (u.partial && options.partials) parts.push([u.partial, "partial"]);
  }
  captions.replaceChildren(...parts.map(([text, kind], i) => {
    const span = document.createElement("span");
    span.className = kind;
    span.textContent = (i ? " " : "") + text;
    return span;
  }));
  box.classList.toggle("empty", parts.length === 0);
}

followCaptions({
  reset() { recent.length = 0; render(); },
  state(state, message) {
    stateBadge.hidden = !options.status || state === "connected";
    stateBadge.textContent = state + "…";
    stateBadge.title = message;
  },
  utterance(u) {
    const i = recent.findIndex((r) => r.key === u.key);
    const copy = {key: u.key, finals: u.finals, partial: u.partial};
    if (i >= 0) recent[i] = copy; else recent.push(copy);
    while (recent.length > options.lines * 3) recent.shift();
    render();
    if (options.clear) {
      clearTimeout(clearTimer);
      clearTimer = setTimeout(() => { recent.length = 0; render(); }, options.clear * 1000);
    }
  },
});
render();
