// Live preview of the engine's jobs. Plain JS, no build step.
// The page is static and holds no secret: the token comes from the URL fragment (#token=…, which
// browsers never send to a server) or from the user, and stays in this browser's localStorage.
// EventSource cannot send an Authorization header, so the page polls the JSON API instead.
"use strict";

const TOKEN_KEY = "clipasso.token";
const POLL_MS = 500;
const $ = (id) => document.getElementById(id);

let token = null;
let selected = null;        // id of the job shown on the right
let userPicked = false;     // once the user clicks a job, stop following the newest running one
let shownSvg = null;
let shownUrl = null;
let shownRegions = null;    // job id + regions drawn over the preview
let photoJob = null;        // job whose photo is (being) shown
let photoUrl = null;
let tick = 0;
let randomDefaults = false;  // the engine's default models are random test towers
let busy = false;

function takeToken() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);  // keep it out of bookmarks
  }
  token = localStorage.getItem(TOKEN_KEY);
  if (!token) askToken("This engine needs its token (the file token in its config folder).");
}

function askToken(why) {
  $("token-why").textContent = why;
  $("token-form").hidden = false;
}

class Unauthorized extends Error {}

async function api(method, path) {
  const resp = await fetch(path, { method, cache: "no-store", headers: { Authorization: "Bearer " + token } });
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) throw new Unauthorized(body.detail || "wrong token");
  if (!resp.ok) throw new Error(body.detail || resp.status + " " + resp.statusText);
  return body;
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
}

// jobs stay listed for days: the date too when it is not today's
function when(unix) {
  const d = new Date(unix * 1000);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function isRandom(spec) {
  return String(spec || "").startsWith("random:");
}

function renderHealth(h) {
  randomDefaults = isRandom(h.clip) || isRandom(h.saliency_clip);
  $("random-warning").hidden = !randomDefaults;
  $("health").textContent = `v${h.version} on ${h.device} · ${h.running} running, ${h.queued} waiting`;
}

function renderList(jobs) {
  const body = $("jobs");
  body.replaceChildren();
  $("no-jobs").hidden = jobs.length > 0;
  for (const job of jobs) {
    const row = document.createElement("tr");
    row.dataset.id = job.id;
    row.classList.toggle("selected", job.id === selected);
    const state = document.createElement("span");
    state.className = "state " + job.state;
    state.textContent = job.state;
    const cells = [
      state,
      job.id.slice(0, 8),
      job.strokes.join(", "),
      Math.round(job.progress * 100) + " %",
      job.started ? when(job.started) : "–",
    ];
    for (const content of cells) {
      const td = document.createElement("td");
      td.append(content);
      row.append(td);
    }
    row.addEventListener("click", () => { selected = job.id; userPicked = true; refresh(true); });
    body.append(row);
  }
  if (!userPicked) {
    const running = jobs.find((j) => j.state === "running") || jobs[0];
    if (running) selected = running.id;
  }
}

function renderJob(job) {
  $("detail").hidden = false;
  $("job-id").textContent = job.id.slice(0, 8);
  $("state").textContent = job.cancel_requested && job.state === "running" ? "cancelling" : job.state;
  $("state").className = "state " + job.state;
  $("progress").value = job.progress;
  const resumed = job.resumed_from === null || job.resumed_from === undefined ? "" : ` (resumed at ${job.resumed_from})`;
  $("iteration").textContent = `${job.iteration} / ${job.iterations}${resumed}`;
  $("loss").textContent = job.loss === null ? "–" : job.loss.toFixed(5);
  $("score").textContent = job.clip_score === null || job.clip_score === undefined ? "–" : job.clip_score.toFixed(4);
  $("eta").textContent = job.state === "running" ? seconds(job.eta_s) : job.state === "done" ? "finished" : "–";
  $("clip").textContent = job.clip;
  $("random-warning").hidden = !(randomDefaults || isRandom(job.clip));
  $("error").hidden = !job.error;
  $("error").textContent = job.error || "";
  $("cancel").disabled = !(job.state === "queued" || job.state === "running") || job.cancel_requested;
  showSvg(job.preview_svg);
  showRegions(job);
  showPhoto(job);
}

// The drawn regions (photo pixels) as outlines, one colour per role (style.css).
function showRegions(job) {
  const key = job.id + ":" + JSON.stringify(job.regions || []);
  if (key === shownRegions) return;
  shownRegions = key;
  const svg = $("regions");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${job.width} ${job.height}`);
  for (const region of job.regions || []) {
    const poly = document.createElementNS(svg.namespaceURI, "polygon");   // the HTML parser made <svg> an SVG element
    poly.setAttribute("points", region.polygon.map((p) => p[0] + "," + p[1]).join(" "));
    poly.setAttribute("class", region.role);
    svg.append(poly);
  }
  $("legend").hidden = !(job.regions && job.regions.length);
}

// The photo under the strokes, fetched once per job while the engine still holds it.
async function showPhoto(job) {
  if (job.id === photoJob) return;
  photoJob = job.id;
  $("photo").hidden = true;
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = null;
  if (job.state !== "queued" && job.state !== "running") return;
  try {
    const resp = await fetch(`/v1/jobs/${job.id}/image`, { cache: "no-store", headers: { Authorization: "Bearer " + token } });
    if (!resp.ok || photoJob !== job.id) return;
    photoUrl = URL.createObjectURL(await resp.blob());
    $("photo").src = photoUrl;
    $("photo").hidden = false;
  } catch (err) {
    // no photo: the strokes and regions are shown on white
  }
}

// An SVG shown through <img> can run no script, whatever it contains.
// Before a job's first step there is no picture: a line says so (never a broken image).
function showSvg(svg) {
  $("waiting").hidden = Boolean(svg);
  $("preview").hidden = !svg;
  if (!svg || svg === shownSvg) return;
  const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  $("preview").src = url;
  if (shownUrl) URL.revokeObjectURL(shownUrl);
  shownSvg = svg;
  shownUrl = url;
}

async function refresh(listToo) {
  if (!token || busy) return;
  busy = true;
  try {
    if (listToo || tick % 2 === 0) {
      const [health, list] = await Promise.all([api("GET", "/v1/health"), api("GET", "/v1/jobs")]);
      renderHealth(health);
      renderList(list.jobs);
    }
    if (selected) renderJob(await api("GET", `/v1/jobs/${selected}`));
  } catch (err) {
    if (err instanceof Unauthorized) {
      token = null;
      askToken("The engine refused the token (" + err.message + "). Paste the current one.");
    } else {
      $("health").textContent = "engine unreachable: " + err.message;
    }
  } finally {
    busy = false;
    tick += 1;
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token-input").value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  $("token-form").hidden = true;
  refresh(true);
});

$("cancel").addEventListener("click", async () => {
  if (!selected) return;
  $("cancel").disabled = true;
  try {
    await api("DELETE", `/v1/jobs/${selected}`);
    await refresh();          // the answer to DELETE has no preview: draw the job as a poll does
  } catch (err) {
    $("error").hidden = false;
    $("error").textContent = "cancel failed: " + err.message;
  }
});

takeToken();
refresh(true);
setInterval(refresh, POLL_MS);
