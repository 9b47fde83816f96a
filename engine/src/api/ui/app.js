// leased web UI: plain JS over the REST API (/api/dhcp), refreshed every
// few seconds. The token, when the server needs one, is kept in this
// browser's localStorage.
"use strict";

const API = "/api/dhcp";
const $ = (sel) => document.querySelector(sel);
let token = localStorage.getItem("leased-token") || "";
let devices = [];
let boundary = null;
let scopes = [];

function say(text, kind) {
  const m = $("#message");
  m.textContent = text;
  m.className = kind || "";
}

async function call(method, path, body) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 || (res.status === 403 && !token)) {
    $("#token-entry").hidden = false;
  }
  const data = await res.json().catch(() => ({ success: false, error: res.statusText }));
  if (!res.ok || data.success === false) throw new Error(data.error || res.statusText);
  return data;
}

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
};

const ipNumber = (ip) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const duration = (s) => {
  if (s === undefined || s === null) return "";
  if (s >= 4294967295 - 1e9) return "never";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
};

// One row per MAC: a reservation (Pinned) wins over a lease of the same MAC.
function unify(reservations, leases) {
  const byMac = new Map();
  for (const l of leases) {
    byMac.set(l.mac, { kind: "Lease", ip: l.ip, mac: l.mac, hostname: l.hostname || "", state: l.state, expires: l.expires_in, lease: l });
  }
  for (const r of reservations) {
    if (!r.mac) continue;
    const lease = r.lease && r.lease.mac === r.mac ? r.lease : null;
    byMac.set(r.mac, { kind: "Pinned", ip: r.ip, mac: r.mac, hostname: r.hostname || (lease && lease.hostname) || "", state: lease ? lease.state : "RESERVED", expires: lease ? lease.expires_in : null, lease, reservation: r });
  }
  return [...byMac.values()];
}

// The leases the device view shows: the live ones matching the search
// (searched by the server), at most ten pages; `partial` says there are more.
const PAGES = 10;
let partial = false;
async function liveLeases() {
  const q = $("#search").value.trim();
  let out = [], cursor = null;
  for (let i = 0; i < PAGES; i++) {
    const page = await call("GET", "/leases?limit=1000&state=OFFERED,ALLOCATED,RESERVED,ABANDONED" + (q ? "&q=" + encodeURIComponent(q) : "") + (cursor ? "&cursor=" + cursor : ""));
    out = out.concat(page.leases);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  partial = Boolean(cursor);
  return out;
}

function renderDevices() {
  const q = $("#search").value.trim().toLowerCase();
  const key = $("#sort").value;
  const rows = devices
    .filter((d) => !q || [d.ip, d.mac, d.hostname].some((v) => (v || "").toLowerCase().includes(q)))
    .sort((a, b) => {
      if (key === "ip") return ipNumber(a.ip) - ipNumber(b.ip);
      if (key === "kind") return a.kind === b.kind ? ipNumber(a.ip) - ipNumber(b.ip) : a.kind === "Pinned" ? -1 : 1;
      if (key === "expires") return (a.expires ?? Infinity) - (b.expires ?? Infinity);
      return (a[key] || "").localeCompare(b[key] || "");
    });
  const body = $("#devices tbody");
  body.replaceChildren(
    ...rows.map((d) => {
      const actions = el("td", { class: "actions" });
      if (d.kind === "Lease") {
        actions.append(el("button", { class: "secondary", onclick: (e) => { e.stopPropagation(); pin(d.ip); } }, "Pin"));
      } else {
        actions.append(
          el("button", { class: "secondary", onclick: (e) => { e.stopPropagation(); editIp(d); } }, "Edit IP"),
          el("button", { class: "danger", onclick: (e) => { e.stopPropagation(); removeReservation(d); } }, "Remove"),
        );
      }
      return el(
        "tr",
        { "data-mac": d.mac, onclick: () => showDetail(d.ip) },
        el("td", {}, el("span", { class: "badge " + d.kind.toLowerCase() }, d.kind)),
        el("td", {}, d.ip),
        el("td", {}, d.mac),
        el("td", {}, d.hostname),
        el("td", {}, d.state),
        el("td", {}, duration(d.expires)),
        actions,
      );
    }),
  );
  if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No devices")));
  $("#devices-note").textContent = partial ? `Showing the first ${PAGES * 1000} leases in address order: search to find others.` : "";
}

function renderBanner(stats) {
  const stat = (label, value, id) => el("div", { class: "stat", id }, el("b", {}, String(value)), label);
  $("#banner").replaceChildren(
    stat("server address", stats.server_id || (stats.listen || []).join(", ") || "per interface", "stat-server"),
    stat(`reservations (max ${stats.max_reservations})`, stats.reservations, "stat-reservations"),
    stat("active leases", stats.active_leases, "stat-leases"),
    stat("pool capacity", stats.pool_capacity, "stat-capacity"),
    stat("hosts", stats.hosts, "stat-hosts"),
  );
}

// One utilisation bar: `taken` of `size`, coloured from 80 % and 95 %.
function bar(label, taken, size, what) {
  const pct = size ? Math.round((taken / size) * 1000) / 10 : 0;
  const level = pct >= 95 ? "critical" : pct >= 80 ? "warning" : "";
  return el(
    "div",
    { class: "pool" },
    el("div", {}, label + "  ", el("span", { class: "muted" }, `${taken} of ${size} ${what} (${pct} %)`)),
    el("div", { class: "bar " + level }, el("span", { style: `width:${Math.min(100, pct)}%` })),
  );
}

// Dynamic pools by lease, and the shown scope's reserved range by reservation.
function renderPools(pools, b) {
  const reserved = b && reservedRange(b);
  $("#pools").replaceChildren(
    ...pools.map((p) => bar(`${p.scope} / ${p.pool}  ${p.range}`, p.taken, p.size, "leased")),
    ...(reserved ? [bar(`${b.scope} / reserved range  ${reserved}`, b.min, b.max_reservations, "reserved")] : []),
  );
}

const boundaryOf = (scope) => call("GET", "/pool-boundary?scope=" + encodeURIComponent(scope));

function renderAnomalies(list) {
  const ul = $("#anomalies");
  if (list.length === 0) return ul.replaceChildren(el("li", { class: "muted" }, "None recorded"));
  ul.replaceChildren(
    ...list.slice(0, 20).map((a) =>
      el("li", {}, el("b", {}, a.kind), ` ${new Date(a.time * 1000).toLocaleString()} `, a.mac || a.relay || "", el("div", { class: "muted" }, JSON.stringify(a.evidence))),
    ),
  );
}

// The reserved range of `b` as "first-last", or null when it has none.
function reservedRange(b, n = b.max_reservations) {
  const start = ipNumber(b.range.split("-")[0]);
  const ip = (x) => [24, 16, 8, 0].map((s) => (x >>> s) & 255).join(".");
  return n > 0 ? `${ip(start)}-${ip(start + n - 1)}` : null;
}

function renderBoundary(b) {
  boundary = b;
  const box = $("#boundary");
  const slider = el("input", { type: "range", id: "boundary-slider", min: String(b.min), max: String(b.max), value: String(b.max_reservations) });
  const preview = el("div", { id: "boundary-preview" });
  const show = () => {
    const n = Number(slider.value);
    const start = ipNumber(b.range.split("-")[0]);
    const ip = (x) => [24, 16, 8, 0].map((s) => (x >>> s) & 255).join(".");
    const reserved = reservedRange(b, n) || "none";
    const dynamic = `${ip(start + n)}-${b.range.split("-")[1]}`;
    const share = (n / b.size) * 100;
    preview.replaceChildren(
      el("div", { class: "ranges" }, el("span", { class: "reserved", style: `width:${share}%` }, n ? `reserved ${n}` : ""), el("span", { class: "dynamic", style: `width:${100 - share}%` }, `dynamic ${b.size - n}`)),
      el("div", {}, `Reserved: ${reserved}`),
      el("div", {}, `Dynamic: ${dynamic}`),
      el("div", { class: "muted" }, `Allowed ${b.min} (reservations in the range) to ${b.max} (range size less its active leases not on a reservation)`),
    );
  };
  slider.addEventListener("input", show);
  show();
  const choice = el("select", { id: "boundary-scope", onchange: async (e) => renderBoundary(await boundaryOf(e.target.value)) },
    ...scopes.map((name) => el("option", name === b.scope ? { value: name, selected: "" } : { value: name }, name)));
  box.replaceChildren(
    el("div", {}, "Scope ", scopes.length > 1 ? choice : b.scope, `, range ${b.range} (${b.size} addresses)`),
    slider,
    preview,
    el("div", { class: "inline-form" },
      el("button", { id: "boundary-apply", onclick: () => setBoundary(Number(slider.value)) }, "Apply"),
      el("button", { id: "boundary-recommended", class: "secondary", onclick: () => { slider.value = String(b.recommended); show(); setBoundary(b.recommended); } }, `Apply recommended (${b.recommended} addresses, 20 %)`),
    ),
  );
}

async function refresh() {
  try {
    const [status, stats, reservations, leases, pools, anomalies] = await Promise.all([
      call("GET", "/status"), call("GET", "/statistics"), call("GET", "/reservations"), liveLeases(), call("GET", "/pools/utilization"), call("GET", "/anomalies?limit=20"),
    ]);
    $("#token-entry").hidden = true;
    $("#server-status").textContent = `v${status.version} · ${status.io_backend} · ${status.shards} shards · up ${duration(status.uptime_secs)}`;
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    renderBanner(stats);
    devices = unify(reservations.reservations, leases);
    renderDevices();
    renderAnomalies(anomalies.anomalies);
    scopes = stats.scopes.map((s) => s.name);
    const b = await boundaryOf(boundary && scopes.includes(boundary.scope) ? boundary.scope : scopes[0]);
    renderPools(pools.pools, b);
    // Leave the slider alone while the operator is moving it.
    const slider = $("#boundary-slider");
    if (!$("#boundary-panel").open || !slider || Number(slider.value) === boundary.max_reservations) renderBoundary(b);
  } catch (e) {
    say(e.message, "error");
  }
}

async function act(what, done) {
  try {
    await what();
    say(done, "ok");
  } catch (e) {
    say(e.message, "error");
  }
  await refresh();
}

const pin = (ip) => act(() => call("POST", `/leases/${ip}/pin`), `Pinned ${ip}`);
function editIp(d) {
  const ip = prompt(`New IP for ${d.mac} (inside the reserved range)`, d.ip);
  if (ip) act(() => call("PUT", `/reservations/${d.mac}`, { ip }), `${d.mac} now reserved at ${ip}`);
}
function removeReservation(d) {
  if (confirm(`Remove the reservation of ${d.mac} (${d.ip})?`)) act(() => call("DELETE", `/reservations/${d.mac}`), `Removed ${d.mac}`);
}
function setBoundary(n) {
  act(() => call("POST", "/pool-boundary", { scope: boundary.scope, max_reservations: n }), `Pool boundary set: ${n} reserved`).then(async () => renderBoundary(await boundaryOf(boundary.scope)));
}

async function showDetail(ip) {
  try {
    const { lease } = await call("GET", "/leases/" + ip);
    $("#detail-panel").hidden = false;
    $("#detail-ip").textContent = ip;
    const rows = ["mac", "state", "scope", "pool", "hostname", "vendor_class", "client_id", "circuit_id", "remote_id"].filter((k) => lease[k] !== null && lease[k] !== undefined);
    $("#detail").replaceChildren(
      ...rows.flatMap((k) => [el("dt", {}, k), el("dd", {}, String(lease[k]))]),
      el("dt", {}, "start"), el("dd", {}, new Date(lease.start * 1000).toLocaleString()),
      el("dt", {}, "expires in"), el("dd", {}, duration(lease.expires_in)),
    );
    const { events } = await call("GET", "/leases/history?mac=" + lease.mac);
    $("#history").replaceChildren(...events.map((e) => el("li", {}, `${new Date(e.time * 1000).toLocaleString()} ${e.kind} ${e.ip}`)));
  } catch (e) {
    say(e.message, "error");
  }
}

// The built-in client against this server, its steps streamed as it prints them.
async function diagnose(action, mac) {
  const out = $("#diagnostics-output");
  out.textContent = "";
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  try {
    const res = await fetch(API + "/diagnostics", { method: "POST", headers, body: JSON.stringify({ action, mac: mac || null }) });
    if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.textContent += decoder.decode(value, { stream: true });
    }
  } catch (e) {
    out.textContent += "error: " + e.message + "\n";
  }
  await refresh();
}

// Filter what is shown at once; ask the server once typing pauses.
let searching = null;
$("#search").addEventListener("input", () => {
  renderDevices();
  clearTimeout(searching);
  searching = setTimeout(refresh, 300);
});
$("#sort").addEventListener("change", renderDevices);
$("#detail-close").addEventListener("click", () => ($("#detail-panel").hidden = true));
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value.trim();
  localStorage.setItem("leased-token", token);
  refresh();
});
$("#add-reservation").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = { mac: f.get("mac").trim() };
  if (f.get("ip").trim()) body.ip = f.get("ip").trim();
  if (f.get("hostname").trim()) body.hostname = f.get("hostname").trim();
  act(() => call("POST", "/reservations", body), `Reserved for ${body.mac}`).then(() => e.target.reset());
});
$("#diagnostics").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const mode = f.get("macmode");
  const mac = mode === "given" ? f.get("mac").trim() : mode === "detected" ? "detected" : "";
  diagnose(e.submitter ? e.submitter.value : "request", mac);
});

refresh();
setInterval(refresh, 5000);
