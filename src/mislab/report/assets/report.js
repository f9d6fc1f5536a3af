// mislab report: draws the figures and runs the transcript browser. Model text is never parsed as HTML here:
// it arrives escaped inside inert <template> elements and is only ever cloned into the page.
"use strict";
(function () {
  // A figure inside a closed <details> (the per-metric sections start collapsed) is drawn when first opened:
  // plotly cannot size a chart it cannot see.
  const figures = JSON.parse(document.getElementById("mislab-figures").textContent);
  function draw(id) {
    const fig = figures[id];
    if (!fig) return;
    delete figures[id];
    Plotly.newPlot(id, fig.data, fig.layout, { displaylogo: false, responsive: true });
  }
  for (const id of Object.keys(figures)) {
    const holder = document.getElementById(id).closest("details");
    if (!holder || holder.open) draw(id);
    else holder.addEventListener("toggle", () => holder.open && draw(id));
  }
  // Links to a collapsed section open it.
  for (const link of document.querySelectorAll('nav a[href^="#"]')) {
    link.addEventListener("click", () => {
      const target = document.getElementById(link.getAttribute("href").slice(1));
      if (target && target.tagName === "DETAILS") target.open = true;
    });
  }

  // A transcript body is built when its card is first opened, so a report with thousands of transcripts
  // stays light. Long texts shared between transcripts (system prompts) live once, in their own template.
  function materialise(card) {
    if (card.dataset.ready) return;
    card.dataset.ready = "1";
    const body = card.querySelector(":scope > template").content.cloneNode(true);
    for (const slot of body.querySelectorAll("[data-text]")) {
      slot.append(document.getElementById(slot.dataset.text).content.cloneNode(true));
    }
    const inner = body.querySelectorAll("details.lazy"); // a branch's continuations, inside its parent's card
    card.append(body);
    inner.forEach(lazy);
  }
  function lazy(card) {
    card.addEventListener("toggle", () => card.open && materialise(card));
  }

  const cards = Array.from(document.querySelectorAll("details.sample"));
  document.querySelectorAll("details.sample, details.lazy").forEach(lazy);

  // Filters: each <select data-filter="x"> keeps the cards whose data-f-x equals its value ("" = any;
  // "counted" = true or false, i.e. the samples in a rate's n).
  const filters = Array.from(document.querySelectorAll("select[data-filter]"));
  const shown = document.getElementById("shown");
  function keep(card) {
    return filters.every((f) => {
      const have = card.getAttribute("data-f-" + f.dataset.filter);
      if (f.value === "") return true;
      if (f.value === "counted") return have === "true" || have === "false";
      return have === f.value;
    });
  }
  function apply() {
    let n = 0;
    for (const card of cards) {
      card.hidden = !keep(card);
      if (!card.hidden) n += 1;
    }
    shown.textContent = String(n);
  }
  for (const f of filters) f.addEventListener("change", apply);

  // Numbers in the tables link to the transcripts behind them.
  for (const link of document.querySelectorAll("a[data-show]")) {
    link.addEventListener("click", () => {
      const want = JSON.parse(link.dataset.show);
      for (const f of filters) f.value = want[f.dataset.filter] || "";
      apply();
    });
  }
  document.getElementById("reset").addEventListener("click", () => {
    for (const f of filters) f.value = "";
    apply();
  });
  apply();
})();
