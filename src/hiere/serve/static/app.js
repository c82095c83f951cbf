// The page of `hiere serve`: POST /extract, then show the document (mentions coloured by entity), the
// relations as a table and a graph, and the explanation of the selected fact. Plain DOM and SVG; text from
// the user or the model is only ever set as textContent.
"use strict";

const state = { model: null, result: null, selected: null };
const $ = (selector) => document.querySelector(selector);
const GRAPH_EDGES = 30; // the graph draws the best-scored facts; the table lists them all
const SVG = "http://www.w3.org/2000/svg";

function element(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(properties)) {
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("data-") || key === "title" || key === "tabindex") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

const hue = (entity) => (entity * 137.508) % 360; // well-spread colours for consecutive entity ids

function chip(name, type, entity) {
  const box = element("span", {}, [element("span", { className: "chip", text: name })]);
  if (entity !== null && entity !== undefined) box.firstChild.style.setProperty("--hue", hue(entity));
  box.append(element("span", { className: "type", text: type }));
  return box;
}

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function loadModel() {
  try {
    state.model = await getJSON("/model");
    const level = state.model.task === "doc" ? "document-level" : "bag-level";
    $("#model-info").textContent = `${state.model.name} · ${level} · ${state.model.relations.length - 1} relations` +
      ` · tuned threshold ${state.model.threshold.toFixed(3)}`;
  } catch (error) {
    $("#model-info").textContent = `model description unavailable (${error.message})`;
  }
}

async function loadExamples() {
  try {
    const examples = await getJSON("/examples");
    const select = $("#example");
    examples.forEach((example, index) => select.append(element("option", { value: String(index), text: example.title })));
    select.addEventListener("change", () => {
      if (select.value !== "") $("#text").value = examples[Number(select.value)].text;
    });
  } catch (error) {
    setStatus(`examples unavailable (${error.message})`, true);
  }
}

function requestBody() {
  const body = { text: $("#text").value };
  const threshold = $("#threshold").value.trim();
  const topK = $("#top-k").value.trim();
  if (threshold !== "") body.threshold = Number(threshold);
  if (topK !== "") body.top_k = Number(topK);
  return body;
}

async function extract() {
  const button = $("#extract");
  button.disabled = true;
  setStatus("reading the text…");
  const started = performance.now();
  const body = requestBody();
  try {
    const response = await fetch("/extract", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      const where = answer.field ? `${answer.field}: ` : "";
      setStatus(`error ${answer.status}: ${where}${answer.message}`, true);
      return;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    render(answer.results[0], body.text);
    setStatus(`${answer.results[0].triples.length} facts in ${seconds} s`);
  } catch (error) {
    setStatus(`request failed: ${error.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function render(result, text) {
  state.result = { ...result, text };
  state.selected = null;
  renderDocument();
  renderTable();
  renderGraph();
  const explanation = $("#explanation");
  explanation.className = "empty";
  explanation.textContent = result.triples.length ? "Select a fact in the table or the graph." : "No facts found.";
}

function renderDocument() {
  const { document: view, text } = state.result;
  const box = $("#document");
  box.replaceChildren();
  box.className = "";
  if (!view.sentences.length) {
    box.className = "empty";
    box.textContent = "(no sentences)";
    return;
  }
  const mentions = view.entities
    .flatMap((entity) => entity.mentions.map((m) => ({ ...m, entity: entity.id, name: entity.name, type: entity.type })))
    .sort((a, b) => a.start - b.start || b.end - a.end);
  let cursor = 0;
  let next = 0;
  view.sentences.forEach((sentence, index) => {
    if (sentence.start > cursor) box.append(text.slice(cursor, sentence.start));
    const span = element("span", { className: "sentence", "data-sentence": String(index) });
    let position = sentence.start;
    while (next < mentions.length && mentions[next].start < sentence.end) {
      const mention = mentions[next++];
      if (mention.start < position) continue; // overlaps the previous mention
      span.append(text.slice(position, mention.start));
      const mark = element("mark", {
        className: "mention", text: text.slice(mention.start, mention.end),
        title: `${mention.name} (${mention.type}), entity ${mention.entity}`, "data-entity": String(mention.entity),
      });
      mark.style.setProperty("--hue", hue(mention.entity));
      span.append(mark);
      position = mention.end;
    }
    span.append(text.slice(position, sentence.end));
    box.append(span);
    cursor = sentence.end;
  });
  if (cursor < text.length) box.append(text.slice(cursor));
  box.onclick = (event) => {
    const mark = event.target.closest("mark.mention");
    box.querySelectorAll("mark.same-entity").forEach((m) => m.classList.remove("same-entity"));
    if (mark) box.querySelectorAll(`mark[data-entity="${mark.dataset.entity}"]`).forEach((m) => m.classList.add("same-entity"));
  };
}

function renderTable() {
  const body = $("#relations tbody");
  body.replaceChildren();
  const triples = state.result.triples;
  $("#count").textContent = `${triples.length} facts, best first`;
  triples.forEach((triple, index) => {
    const row = element("tr", {
      tabindex: "0", "data-index": String(index), "data-head": triple.head, "data-relation": triple.relation,
      "data-tail": triple.tail, "data-score": String(triple.score),
    }, [
      element("td", {}, [chip(triple.head, triple.head_type, triple.explanation.head_entity)]),
      element("td", {}, [triple.relation_name,
        ...(triple.relation_name !== triple.relation ? [element("span", { className: "relation-id", text: triple.relation })] : [])]),
      element("td", {}, [chip(triple.tail, triple.tail_type, triple.explanation.tail_entity)]),
      element("td", { className: "score", text: triple.score.toFixed(3) }),
    ]);
    row.addEventListener("click", () => select(index));
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(index); });
    body.append(row);
  });
}

function renderGraph() {
  const graph = $("#graph");
  graph.replaceChildren();
  const triples = state.result.triples.slice(0, GRAPH_EDGES);
  const total = state.result.triples.length;
  $("#graph-note").textContent = total > GRAPH_EDGES ? `the ${GRAPH_EDGES} best of ${total} facts` : "";
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7",
    markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }));
  defs.append(marker);
  graph.append(defs);
  const key = (name, entity) => (entity === null || entity === undefined ? `name:${name}` : `entity:${entity}`);
  const nodes = new Map();
  for (const t of triples) {
    for (const [name, entity] of [[t.head, t.explanation.head_entity], [t.tail, t.explanation.tail_entity]]) {
      if (!nodes.has(key(name, entity))) nodes.set(key(name, entity), { name, entity });
    }
  }
  const [width, height] = [520, 340];
  const radius = Math.min(width, height) / 2 - 40;
  [...nodes.values()].forEach((node, index) => {
    const angle = (2 * Math.PI * index) / nodes.size - Math.PI / 2;
    node.x = width / 2 + radius * Math.cos(angle);
    node.y = height / 2 + radius * Math.sin(angle);
  });
  const pairCount = new Map();
  triples.forEach((triple, index) => {
    const from = nodes.get(key(triple.head, triple.explanation.head_entity));
    const to = nodes.get(key(triple.tail, triple.explanation.tail_entity));
    const pair = [from.name, to.name].sort().join("\u0000");
    const order = pairCount.get(pair) || 0;
    pairCount.set(pair, order + 1);
    const [dx, dy] = [to.x - from.x, to.y - from.y];
    const length = Math.hypot(dx, dy) || 1;
    const bend = 18 * (order + 1) * (from.name < to.name ? 1 : -1); // parallel facts bend apart
    const [cx, cy] = [(from.x + to.x) / 2 - (dy / length) * bend, (from.y + to.y) / 2 + (dx / length) * bend];
    const shorten = (x, y, towardX, towardY) => {
      const d = Math.hypot(towardX - x, towardY - y) || 1;
      return [x + ((towardX - x) / d) * 9, y + ((towardY - y) / d) * 9];
    };
    const [x1, y1] = shorten(from.x, from.y, cx, cy);
    const [x2, y2] = shorten(to.x, to.y, cx, cy);
    const edge = svg("path", { d: `M ${x1} ${y1} Q ${cx} ${cy} ${x2} ${y2}`, class: "edge", "marker-end": "url(#arrow)",
      "data-index": String(index) });
    const title = svg("title");
    title.textContent = `${triple.head} — ${triple.relation_name} → ${triple.tail} (${triple.score.toFixed(3)})`;
    edge.append(title);
    edge.addEventListener("click", () => select(index));
    graph.append(edge);
  });
  for (const node of nodes.values()) {
    const group = svg("g", { class: "node", transform: `translate(${node.x} ${node.y})` });
    const circle = svg("circle", { r: "8" });
    circle.style.fill = node.entity === null || node.entity === undefined ? "#9aa3b5" : `hsl(${hue(node.entity)} 60% 55%)`;
    const label = svg("text", { y: node.y < height / 2 ? "-12" : "20", "text-anchor": "middle" });
    label.textContent = node.name.length > 22 ? `${node.name.slice(0, 21)}…` : node.name;
    const title = svg("title");
    title.textContent = node.name;
    group.append(circle, label, title);
    graph.append(group);
  }
}

function select(index) {
  state.selected = index;
  const triple = state.result.triples[index];
  document.querySelectorAll("#relations tbody tr").forEach((row) => row.classList.toggle("selected", row.dataset.index === String(index)));
  const graph = $("#graph");
  graph.querySelectorAll(".edge").forEach((edge) => edge.classList.toggle("selected", edge.dataset.index === String(index)));
  graph.querySelectorAll(".edge-label").forEach((label) => label.remove());
  const edge = graph.querySelector(`.edge[data-index="${index}"]`);
  if (edge) {
    const middle = edge.getPointAtLength(edge.getTotalLength() / 2);
    const label = svg("text", { x: String(middle.x), y: String(middle.y - 4), class: "edge-label", "text-anchor": "middle" });
    label.textContent = triple.relation_name;
    graph.append(label);
  }
  highlightDocument(triple);
  explain(triple);
}

function highlightDocument(triple) {
  const box = $("#document");
  const { evidence_sentences: evidence, head_entity: head, tail_entity: tail } = triple.explanation;
  box.classList.add("focused");
  box.querySelectorAll(".sentence").forEach((sentence) => {
    sentence.classList.toggle("evidence", evidence.includes(Number(sentence.dataset.sentence)));
  });
  box.querySelectorAll("mark.mention").forEach((mark) => {
    mark.classList.toggle("role-head", mark.dataset.entity === String(head));
    mark.classList.toggle("role-tail", mark.dataset.entity === String(tail));
  });
  const first = box.querySelector(".sentence.evidence");
  if (first) first.scrollIntoView({ block: "nearest" });
}

function explain(triple) {
  const box = $("#explanation");
  box.className = "";
  box.replaceChildren(element("h3", {}, [
    chip(triple.head, triple.head_type, triple.explanation.head_entity), ` ${triple.relation_name} → `,
    chip(triple.tail, triple.tail_type, triple.explanation.tail_entity), ` · score ${triple.score.toFixed(3)}`,
  ]));
  const attention = triple.explanation.attention;
  if (attention && attention.weights.length) {
    box.append(attentionTable(attention));
    return;
  }
  box.append(element("div", { className: "note", text: "Evidence sentences (highlighted in the document):" }));
  const list = element("ol", { className: "evidence" });
  for (const sentence of triple.evidence) list.append(element("li", {}, [element("span", { className: "evidence-sentence", text: sentence })]));
  box.append(list);
}

function attentionTable(attention) {
  const sentences = state.result.document.sentences;
  const text = state.result.text;
  const table = element("table", { className: "attention" });
  const head = element("tr", {}, [element("th", { text: "sentence of the bag" })]);
  attention.levels.forEach((level) => head.append(element("th", { text: level, title: level })));
  table.append(element("thead", {}, [head]));
  const body = element("tbody");
  attention.sentences.forEach((sentenceId, position) => {
    const span = sentences[sentenceId];
    const row = element("tr", {}, [element("td", { text: span ? text.slice(span.start, span.end) : `bag sentence ${position + 1}` })]);
    attention.weights.forEach((level) => {
      const weight = level[position] ?? 0;
      row.append(element("td", { className: "weight" }, [element("div", { className: "bar" }, [
        element("span", { style: `width: ${(100 * weight).toFixed(1)}%` }), element("em", { text: weight.toFixed(2) }),
      ])]));
    });
    body.append(row);
  });
  table.append(body);
  return element("div", {}, [
    element("div", { className: "note", text: "Attention over the bag's sentences, one column per level the model explains (HNRE: the relation, then its ancestors)." }),
    table,
  ]);
}

$("#extract").addEventListener("click", extract);
$("#text").addEventListener("input", () => { $("#example").value = ""; }); // an edited text is no longer the example
$("#text").addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) extract(); });
loadModel();
loadExamples();
