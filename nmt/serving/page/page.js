// The web page's behaviour: read /info to show the right panel, send the
// form to /translate or /generate, show the answer (and the attention heatmap).
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message || "";
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    throw new Error(answer.error || `HTTP ${response.status}`);
  }
  return answer;
}

function number(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

// A piece as a label: a piece of only the word-start mark decodes to "".
const label = (piece) => piece || "·";

// One row per target piece, one column per source piece; darker = more weight,
// relative to the largest weight (diffuse attention would be all but white).
function heatmap(attention) {
  const table = document.createElement("table");
  table.className = "heatmap";
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th"));
  for (const piece of attention.src_tokens) {
    const th = document.createElement("th");
    th.textContent = label(piece);
    head.appendChild(th);
  }
  const top = Math.max(...attention.weights.flat(), 1e-6);
  const body = table.createTBody();
  attention.weights.forEach((row, t) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.textContent = label(attention.tgt_tokens[t]);
    tr.appendChild(th);
    row.forEach((weight, s) => {
      const td = tr.insertCell();
      td.style.background = `rgba(33, 102, 172, ${weight / top})`;
      td.title = `${label(attention.tgt_tokens[t])} ← ${label(attention.src_tokens[s])}` +
        `: ${Math.round(weight * 100)} %`;
    });
  });
  return table;
}

function showTranslation(result) {
  const box = document.createElement("div");
  box.className = "result";
  const text = document.createElement("div");
  text.className = "translation";
  text.textContent = result.translation;
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = `score ${result.score}, log-prob ${result.log_prob}`;
  box.append(text, score);
  if (result.attention && result.attention.weights && result.attention.weights.length) {
    box.appendChild(heatmap(result.attention));
  }
  return box;
}

async function translate() {
  showError("");
  const lines = $("source").value.split("\n").filter((line) => line.trim() !== "");
  if (!lines.length) {
    showError("type a sentence first");
    return;
  }
  $("translate").disabled = true;
  try {
    const body = { texts: lines, attention: true };
    const beam = number("beam");
    if (beam !== null) body.beam = beam;
    const answer = await post("/translate", body);
    $("translations").replaceChildren(...answer.results.map(showTranslation));
  } catch (error) {
    showError(error.message);
  } finally {
    $("translate").disabled = false;
  }
}

async function generate() {
  showError("");
  $("generate").disabled = true;
  try {
    const body = { prompt: $("prompt").value, max_chars: number("max-chars") ?? 300 };
    const beam = number("gen-beam") ?? 0;
    if (beam > 0) {
      body.beam = beam;
    } else {
      body.temperature = number("temperature") ?? 0.8;
      body.top_k = number("top-k") ?? 0;
      body.top_p = number("top-p") ?? 1;
      const seed = number("seed");
      if (seed !== null) body.seed = seed;
    }
    const answer = await post("/generate", body);
    $("continuation").textContent = body.prompt + answer.results[0].text;
    $("continuation").hidden = false;
    $("seed-used").textContent = answer.seed === null ? "" : `seed ${answer.seed}`;
  } catch (error) {
    showError(error.message);
  } finally {
    $("generate").disabled = false;
  }
}

function describe(info) {
  const params = `${(info.parameters / 1e6).toFixed(2)} M parameters`;
  const model = `${info.model.cell.toUpperCase()}, ${info.model.layers} layer(s)`;
  if (info.kind === "translation") {
    const pair = `${info.languages.src} → ${info.languages.tgt}`;
    return `${info.checkpoint}: translation ${pair}, ${model}, ${params}`;
  }
  return `${info.checkpoint}: character language model, ${model}, ${params}`;
}

async function start() {
  try {
    const info = await (await fetch("/info")).json();
    $("model").textContent = describe(info);
    if (info.kind === "translation") {
      $("beam").value = info.search.beam;
      $("beam").max = info.limits.max_beam;
      $("translate-panel").hidden = false;
      $("source").focus();
    } else {
      $("max-chars").value = info.search.max_chars;
      $("max-chars").max = info.limits.max_gen_chars;
      $("gen-beam").max = info.limits.max_beam;
      $("generate-panel").hidden = false;
      $("prompt").focus();
    }
  } catch (error) {
    showError(`cannot read /info: ${error.message}`);
  }
}

$("translate").addEventListener("click", translate);
$("generate").addEventListener("click", generate);
for (const [box, action] of [["source", translate], ["prompt", generate]]) {
  $(box).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) action();
  });
}
start();
