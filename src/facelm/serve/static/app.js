// facelm's page: choose or drop photos, call the API, draw the faces and show the results.
// Plain JavaScript, no libraries: the page must work offline and load fast.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { limits: null, titles: {} };

// ---------- API ----------

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function postForm(path, form) {
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, headers: authHeaders() });
  } catch (err) {
    throw new Error("the server cannot be reached (" + err.message + ")");
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: handled below */ }
  if (!response.ok) {
    if (response.status === 401) $("token-box").hidden = false;
    const msg = body && body.error ? body.error.message : "HTTP " + response.status;
    const retry = response.headers.get("Retry-After");
    throw new Error(msg + (retry ? " Try again in " + retry + " s." : ""));
  }
  return body;
}

async function loadSettings() {
  try {
    const health = await (await fetch("/healthz")).json();
    state.limits = health;
    if (health.auth_required) $("token-box").hidden = false;
    const aspects = (await (await fetch("/v1/aspects")).json()).aspects;
    for (const a of aspects) {
      state.titles[a.name] = a.title;
      const opt = document.createElement("option");
      opt.value = a.name;
      opt.textContent = a.title;
      $("aspect").appendChild(opt);
    }
  } catch (err) {
    $("verify-status").textContent = "Could not read the server's settings: " + err.message;
  }
}

// ---------- photos and drawing ----------

function checkFile(file, label) {
  if (!file) return label + ": choose a photo first.";
  if (!file.type.startsWith("image/") && file.type !== "") return label + " (" + file.name + ") is not an image file.";
  const max = state.limits && state.limits.max_upload_bytes;
  if (max && file.size > max) {
    return label + " (" + file.name + ") is " + (file.size / 1e6).toFixed(1) + " MB; the limit is " + (max / 1e6).toFixed(1) + " MB.";
  }
  return null;
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(file.name + " cannot be shown by the browser"));
    img.src = URL.createObjectURL(file);
  });
}

// Draw the photo scaled into the canvas, then (if given) the face box and the 68 landmarks.
// Coordinates from the API are in the photo as decoded (EXIF-rotated, maybe reduced), whose size
// is analysis.image_size; the browser also shows photos EXIF-rotated, so one scale maps both.
async function drawFace(canvas, file, analysis, label) {
  const img = await loadImage(file);
  const size = 320;
  const scale = Math.min(size / img.naturalWidth, size / img.naturalHeight);
  canvas.width = Math.round(img.naturalWidth * scale);
  canvas.height = Math.round(img.naturalHeight * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  URL.revokeObjectURL(img.src);
  if (!analysis) {
    canvas.setAttribute("aria-label", label + ": " + file.name);
    return;
  }
  const k = canvas.width / analysis.image_size[0];
  const [x, y, w, h] = analysis.detection.box;
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#ffd400";
  ctx.strokeRect(x * k, y * k, w * k, h * k);
  ctx.fillStyle = "#00e5ff";
  for (const [px, py] of analysis.landmarks68) {
    ctx.beginPath();
    ctx.arc(px * k, py * k, Math.max(1.5, 2 * k), 0, 2 * Math.PI);
    ctx.fill();
  }
  const faces = analysis.faces_found > 1 ? " (" + analysis.faces_found + " faces found; the main one is marked)" : "";
  canvas.setAttribute("aria-label", label + ": " + file.name + ", with the detected face box and 68 landmarks drawn" + faces);
}

function setupDrop(zone) {
  const input = $(zone.dataset.for);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
  input.addEventListener("change", () => {
    const file = input.files[0];
    const canvas = zone.querySelector("canvas");
    const label = zone.querySelector("label").textContent;
    if (file) drawFace(canvas, file, null, label).catch((err) => { canvas.setAttribute("aria-label", err.message); });
  });
}

// ---------- verify ----------

const fmt = (v, d = 2) => (v === null || v === undefined ? "not measured" : Number(v).toFixed(d));
const attr = (fa, key) => (fa.attributes ? fa.attributes[key] : null);
const measured = (fa, key) => attr(fa, key) || "not measured";
const angles = (fa) => [fa.pose.yaw, fa.pose.pitch, fa.pose.roll].map((v) => fmt(v, 0)).join(" / ");

function aspectRows(r) {
  const a = r.a, b = r.b, d = r.differences;
  return [
    ["Identity similarity", "—", "—", "fused " + fmt(r.score) + " vs threshold " + fmt(r.threshold) + " (SFace " + fmt(r.scores.sface) + ", dlib " + fmt(r.scores.dlib) + ")"],
    ["Age (years)", fmt(attr(a, "age"), 0), fmt(attr(b, "age"), 0), d.age_gap === null ? "not measured" : "gap " + fmt(d.age_gap, 0)],
    ["Gender", measured(a, "gender"), measured(b, "gender"), d.gender_match === null ? "not measured" : (d.gender_match ? "same" : "differs")],
    ["Expression", measured(a, "expression"), measured(b, "expression"), d.expression_distance === null ? "not measured" : "distance " + fmt(d.expression_distance)],
    ["Pose yaw / pitch / roll (°)", angles(a), angles(b), "yaw gap " + fmt(d.yaw_gap, 0) + "°"],
    ["Brightness (0–1)", fmt(a.quality.brightness), fmt(b.quality.brightness), "gap " + fmt(d.brightness_gap)],
    ["Sharpness", fmt(a.quality.sharpness, 1), fmt(b.quality.sharpness, 1), "ratio " + fmt(d.sharpness_ratio, 1)],
    ["Eye distance (px)", fmt(a.quality.interocular_px, 0), fmt(b.quality.interocular_px, 0), "smaller " + fmt(d.min_interocular_px, 0)],
    ["Landmark geometry", "—", "—", "distance " + fmt(d.geometry_distance, 3) + " (most: " + d.geometry_largest[0].replace(/_/g, " ") + ")"],
  ];
}

function fillTable(tbody, rows) {
  tbody.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    row.forEach((cell, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      td.textContent = cell;
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
}

function showVerdict(r) {
  const verdict = $("verdict");
  verdict.textContent = r.same ? "Same person" : "Different people";
  verdict.dataset.same = String(r.same);
  verdict.className = r.same ? "same" : "different";
  $("verdict-numbers").textContent = "Score " + fmt(r.score, 3) + " against threshold " + fmt(r.threshold, 3) +
    "; confidence " + Math.round(r.confidence * 100) + "%" + (r.text_model ? "; text by " + r.text_model : "") + ".";
  const clamp = (v) => Math.max(0, Math.min(1, v));
  const gauge = $("gauge");
  gauge.setAttribute("aria-valuenow", String(clamp(r.score)));
  gauge.setAttribute("aria-valuetext", "score " + fmt(r.score) + ", threshold " + fmt(r.threshold) + (r.same ? ", above: same person" : ", below: different people"));
  $("gauge-fill").style.width = (clamp(r.score) * 100) + "%";
  $("gauge-fill").className = "gauge-fill " + (r.same ? "same" : "different");
  $("gauge-threshold").style.left = (clamp(r.threshold) * 100) + "%";
  $("concise").textContent = r.explanation ? r.explanation.concise : "";
  $("detailed").textContent = r.explanation ? r.explanation.detailed : "";
  fillTable($("aspect-table").querySelector("tbody"), aspectRows(r));
  $("verify-result").hidden = false;
  verdict.focus();
}

async function onVerify(event) {
  event.preventDefault();
  const fileA = $("image-a").files[0], fileB = $("image-b").files[0];
  const problem = checkFile(fileA, "Photo A") || checkFile(fileB, "Photo B");
  const status = $("verify-status");
  if (problem) { status.textContent = problem; return; }
  const form = new FormData();
  form.append("image_a", fileA);
  form.append("image_b", fileB);
  status.textContent = "Analysing both photos…";
  $("verify-submit").disabled = true;
  try {
    const r = await postForm("/v1/verify", form);
    await Promise.all([drawFace($("canvas-a"), fileA, r.a, "Photo A"), drawFace($("canvas-b"), fileB, r.b, "Photo B")]);
    showVerdict(r);
    status.textContent = "Done.";
  } catch (err) {
    $("verify-result").hidden = true;
    status.textContent = "Error: " + err.message;
  } finally {
    $("verify-submit").disabled = false;
  }
}

// ---------- describe ----------

async function onDescribe(event) {
  event.preventDefault();
  const file = $("image-one").files[0];
  const status = $("describe-status");
  const problem = checkFile(file, "Photo");
  if (problem) { status.textContent = problem; return; }
  const form = new FormData();
  form.append("image", file);
  if ($("aspect").value) form.append("aspect", $("aspect").value);
  status.textContent = "Analysing the photo…";
  $("describe-submit").disabled = true;
  try {
    const r = await postForm("/v1/describe", form);
    await drawFace($("canvas-one"), file, r.analysis, "Photo");
    const rows = Object.entries(r.answers).map(([k, text]) => [state.titles[k] || k, text]);
    fillTable($("answers-table").querySelector("tbody"), rows);
    $("answers-table").hidden = false;
    status.textContent = "Done.";
  } catch (err) {
    $("answers-table").hidden = true;
    status.textContent = "Error: " + err.message;
  } finally {
    $("describe-submit").disabled = false;
  }
}

// ---------- mode switch ----------

function showMode(mode) {
  for (const name of ["verify", "describe"]) {
    $(name).hidden = name !== mode;
    $("tab-" + name).setAttribute("aria-pressed", String(name === mode));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".drop").forEach(setupDrop);
  $("verify-form").addEventListener("submit", onVerify);
  $("describe-form").addEventListener("submit", onDescribe);
  $("tab-verify").addEventListener("click", () => showMode("verify"));
  $("tab-describe").addEventListener("click", () => showMode("describe"));
  loadSettings();
});
