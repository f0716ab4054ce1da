// ringway console: renders GET /api/v1/events (Server-Sent Events of the
// node's status) and sends operations to the API. No framework, no build
// step; every text goes through textContent (nothing from the node is
// parsed as HTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let csrf = "";
  let role = "";
  let status = null; // the last status received
  let lastData = 0; // when it arrived (ms)
  let source = null;
  let retry = null;
  let dragging = false; // no re-rendering under a drag in progress
  const actions = []; // {id, desc, el, state, check}

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids) if (c) e.append(c);
    return e;
  }

  // rate renders bytes/s.
  function rate(bps) {
    if (!bps) return "0 B/s";
    const u = ["B/s", "kB/s", "MB/s", "GB/s"];
    let i = 0;
    while (bps >= 1000 && i < u.length - 1) { bps /= 1000; i++; }
    return (bps >= 100 ? bps.toFixed(0) : bps.toFixed(1)) + " " + u[i];
  }

  // logWidth maps bytes/s to a bar width on a log scale: 1 kB/s .. 10 GB/s.
  function logWidth(bps) {
    if (!bps || bps < 1000) return 0;
    return Math.min(100, (Math.log10(bps) - 3) / 7 * 100);
  }

  // --- session -------------------------------------------------------

  async function checkSession() {
    const r = await fetch("/console/session", { credentials: "same-origin" });
    if (r.ok) { start(await r.json()); return; }
    showLogin("");
  }

  function showLogin(msg) {
    if (source) { source.close(); source = null; }
    $("main").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = msg;
    $("token").focus();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value;
    const r = await fetch("/console/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
    });
    $("token").value = "";
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error; } catch (e) { /* not JSON */ }
      $("login-error").textContent = msg;
      return;
    }
    start(await r.json());
  });

  $("logout").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
    showLogin("Logged out.");
  });

  function start(s) {
    csrf = s.csrf;
    role = s.role;
    document.body.classList.toggle("readonly", role !== "admin");
    document.body.dataset.role = role;
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = false;
    $("hint").textContent = role === "admin"
      ? "Drag a VIP onto a node to move it there (sets its preference), or use its menu (right-click, or the ⋯ button)."
      : "Read-only session: you see everything and can change nothing.";
    connect();
  }

  // --- live data -------------------------------------------------------

  function connect() {
    if (source) source.close();
    clearTimeout(retry);
    source = new EventSource("/api/v1/events");
    source.addEventListener("status", (ev) => {
      lastData = Date.now();
      status = JSON.parse(ev.data);
      if (!dragging) render();
    });
    source.onerror = () => {
      showAge();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the node answered an error, e.g. 401 after a
        // restart): check the session, then try again.
        retry = setTimeout(async () => {
          try {
            const r = await fetch("/console/session", { credentials: "same-origin" });
            if (r.status === 401) { showLogin("Session ended (the node restarted?): log in again."); return; }
          } catch (e) { /* node unreachable: keep trying */ }
          connect();
        }, 1000);
      }
    };
  }

  function showAge() {
    const c = $("conn");
    if (!lastData) { c.textContent = "connecting…"; return; }
    const age = (Date.now() - lastData) / 1000;
    if (age > 2.5) {
      c.className = "lost";
      c.dataset.lost = "true";
      c.textContent = "connection to the node lost: data is " + age.toFixed(0) + " s old, reconnecting…";
    } else {
      c.className = "ok";
      c.dataset.lost = "false";
      c.textContent = "live";
    }
  }
  setInterval(showAge, 500);

  // --- rendering -------------------------------------------------------

  function render() {
    const s = status;
    $("cluster").textContent = s.cluster;
    const holder = s.holder ? "token at " + s.holder + ", rotation " + s.rotation_ms.toFixed(1) + " ms" : "no token";
    // L.BAL and AUTO: badges, and for admins buttons that switch them for
    // the whole cluster (through the token).
    const toggle = (name, label, on, why) => role === "admin"
      ? el("button", { type: "button", class: "badge switch" + (on ? " on" : ""), "aria-pressed": on ? "true" : "false",
        "data-switch": name, "data-focus-key": "switch-" + name, title: why + " (click to switch " + (on ? "off" : "on") + " cluster-wide)",
        onclick: () => switchOp(name, on ? "off" : "on"), text: label + (on ? "" : " off") })
      : el("span", { class: "badge" + (on ? " on" : ""), "data-switch": name, title: why, text: label + (on ? "" : " off") });
    $("summary").replaceChildren(...[
      el("span", { text: "via " + s.node + " (" + s.mode + (s.alone ? ", alone" : "") + "), " + holder + " " }),
      toggle("balance", "L.BAL", s.balancing, "load balancing moves VIPs from the most to the least loaded node"), " ",
      toggle("auto", "AUTO", s.auto, "a node that joins or recovers takes VIPs by itself; off: it is closed until opened"), " ",
      role !== "admin" ? el("span", { class: "badge", text: "read-only" }) : null].filter((x) => x !== null));

    const nodes = $("nodes");
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focusKey : null;
    nodes.replaceChildren();
    for (const n of s.node_states || []) nodes.append(nodeCard(s, n));
    const unowned = (s.vips || []).filter((v) => !v.owner);
    $("unowned-box").hidden = unowned.length === 0;
    $("unowned").replaceChildren(...unowned.map((v) => vipChip(v)));
    if (focused) {
      const f = document.querySelector('[data-focus-key="' + CSS.escape(focused) + '"]');
      if (f) f.focus();
    }

    $("moves").replaceChildren(...(s.moves || []).slice().reverse().slice(0, 20).map((m) =>
      el("li", { "data-vip": m.vip, "data-reason": m.reason, text: time(m.time) + "  " + m.vip + ": " + (m.from || "nobody") + " → " + (m.to || "nobody") + " (" + m.reason + ")" })));
    $("events").replaceChildren(...(s.events || []).slice().reverse().slice(0, 20).map((e) =>
      el("li", { "data-kind": e.kind, text: time(e.time) + "  " + e.kind + (e.node ? " " + e.node : "") + ": " + e.cause })));
    updateActions();
  }

  function time(t) {
    const d = new Date(t);
    return isNaN(d) ? "" : d.toLocaleTimeString();
  }

  function nodeCard(s, n) {
    const self = n.id === s.node;
    const card = el("article", { class: "node", "data-node": n.id, "data-state": n.state, "aria-label": "node " + n.id + ", " + n.state });
    const head = el("div", { class: "node-head" },
      el("h3", { text: n.id }),
      el("span", { class: "badge state-" + n.state, text: n.state.toUpperCase() }),
      s.holder === n.id ? el("span", { class: "badge holder", title: "holds the token", text: "TOKEN" }) : null);
    card.append(head);

    // Traffic lights: this node's own monitors are known in detail; for the
    // others the token carries one health bit.
    const lights = el("div", { class: "lights" });
    const light = (name, colour, why) => el("span", { class: "light " + colour, title: why, "aria-label": name + ": " + why, text: name });
    if (self) {
      const down = s.links_down || [];
      lights.append(light("NIC", down.length ? "red" : "green", down.length ? "down: " + down.join(", ") : "links up"));
      const ping = s.ping_failing || [];
      lights.append(light("ping", ping.length ? "red" : "green", ping.length ? "failing: " + ping.join(", ") : "answering or not monitored"));
      lights.append(light("app", s.app_failure ? "red" : "green", s.app_failure || "passing or not monitored"));
    } else if (n.state === "down") {
      lights.append(light("health", "yellow", "not in the ring: unknown"));
    } else {
      lights.append(light("health", n.state === "unhealthy" ? "red" : "green", n.state === "unhealthy" ? "a monitor fails on " + n.id : "monitors pass (as carried on the token)"));
    }
    card.append(lights);

    card.append(el("div", { class: "bar", role: "img", "aria-label": "load " + rate(n.load_bps) + " (log scale)" },
      el("span", { style: null })));
    card.lastChild.firstChild.style.width = logWidth(n.load_bps) + "%";
    let loadText = "load " + rate(n.load_bps) + " over " + n.vips + " VIP" + (n.vips === 1 ? "" : "s");
    if (self && s.links) loadText += "; NICs " + s.links.map((l) => l.name + " ↓" + rate(l.rx_bps) + " ↑" + rate(l.tx_bps)).join(", ");
    card.append(el("div", { class: "load", "data-load": n.load_bps, text: loadText }));

    // VIPs grouped by subnet.
    const bySubnet = new Map();
    for (const v of s.vips || []) {
      if (v.owner !== n.id) continue;
      if (!bySubnet.has(v.subnet)) bySubnet.set(v.subnet, []);
      bySubnet.get(v.subnet).push(v);
    }
    for (const [subnet, vips] of bySubnet) {
      card.append(el("h3", { text: subnet }));
      card.append(el("ul", { class: "vips", "aria-label": "VIPs of " + n.id + " on " + subnet }, ...vips.map((v) => vipChip(v))));
    }

    if (role === "admin") {
      const open = n.state === "closed";
      card.append(el("div", { class: "node-actions mutate" },
        el("button", { type: "button", "data-focus-key": "node-" + n.id + "-toggle", "data-action": open ? "open" : "close",
          "aria-label": (open ? "open node " : "close node ") + n.id,
          onclick: () => nodeOp(n.id, open ? "open" : "close"), text: open ? "Open" : "Close" })));
      card.addEventListener("dragover", (ev) => { ev.preventDefault(); card.classList.add("drop"); });
      card.addEventListener("dragleave", () => card.classList.remove("drop"));
      card.addEventListener("drop", (ev) => {
        ev.preventDefault();
        dragging = false;
        card.classList.remove("drop");
        const vip = ev.dataTransfer.getData("text/plain");
        if (vip) vipOp(vip, "move", n.id);
      });
    }
    return card;
  }

  function vipChip(v) {
    const li = el("li", {
      class: "vip" + (v.closed ? " closed" : ""), "data-vip": v.vip, "data-owner": v.owner || "",
      "data-focus-key": "vip-" + v.vip,
      tabindex: "0", draggable: role === "admin" ? "true" : null,
      "aria-label": "VIP " + v.vip + (v.owner ? " on " + v.owner : " answered by nobody") + ", " + rate(v.rate_bps) +
        (v.preferred ? ", prefers " + v.preferred : "") + ", persistence " + v.persistence + (v.closed ? ", closed" : ""),
      title: "preferred: " + (v.preferred || "none") + ", persistence: " + v.persistence + (v.group ? ", group " + v.group : ""),
    }, el("span", { text: v.vip }), el("span", { class: "rate", text: rate(v.rate_bps) }));
    if (v.preferred) li.append(el("span", { class: "rate", text: "★" + v.preferred }));
    if (role === "admin") {
      li.addEventListener("dragstart", (ev) => { dragging = true; ev.dataTransfer.setData("text/plain", v.vip); ev.dataTransfer.effectAllowed = "move"; });
      li.addEventListener("dragend", () => { dragging = false; render(); });
      li.addEventListener("contextmenu", (ev) => { ev.preventDefault(); openMenu(v, ev.pageX, ev.pageY); });
      li.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === "ContextMenu" || (ev.shiftKey && ev.key === "F10")) {
          ev.preventDefault();
          const r = li.getBoundingClientRect();
          openMenu(v, r.left + window.scrollX, r.bottom + window.scrollY);
        }
      });
      li.append(el("button", { type: "button", class: "mutate", "aria-label": "actions for VIP " + v.vip, "aria-haspopup": "menu",
        "data-focus-key": "vip-" + v.vip + "-menu",
        onclick: (ev) => { const r = ev.target.getBoundingClientRect(); openMenu(v, r.left + window.scrollX, r.bottom + window.scrollY); },
        text: "⋯" }));
    }
    return li;
  }

  // --- menu --------------------------------------------------------------

  function openMenu(v, x, y) {
    const m = $("menu");
    const item = (label, fn, key) => el("button", { type: "button", role: "menuitem", "data-op": key, onclick: () => { closeMenu(); fn(); }, text: label });
    const items = [];
    for (const n of status.node_states || []) {
      if (n.id !== v.owner && n.state !== "down") items.push(item("Move to " + n.id, () => vipOp(v.vip, "move", n.id), "move-" + n.id));
    }
    items.push(el("div", { class: "sep", role: "separator" }));
    items.push(item("Prefer its current node", () => vipOp(v.vip, "prefer"), "prefer"));
    items.push(item("Clear preference", () => vipOp(v.vip, "unprefer"), "unprefer"));
    items.push(item("Stick to its current node", () => vipOp(v.vip, "stick"), "stick"));
    items.push(item("Unstick", () => vipOp(v.vip, "unstick"), "unstick"));
    items.push(v.closed ? item("Open", () => vipOp(v.vip, "open"), "open") : item("Close (answered by nobody)", () => vipOp(v.vip, "close"), "close"));
    m.replaceChildren(...items);
    m.setAttribute("aria-label", "actions for VIP " + v.vip);
    m.dataset.vip = v.vip;
    m.style.left = x + "px";
    m.style.top = y + "px";
    m.hidden = false;
    const first = m.querySelector("button");
    if (first) first.focus();
  }

  function closeMenu() { $("menu").hidden = true; }
  document.addEventListener("click", (ev) => { if (!$("menu").contains(ev.target) && !(ev.target.closest && ev.target.closest(".vip"))) closeMenu(); });
  document.addEventListener("keydown", (ev) => {
    const m = $("menu");
    if (m.hidden) return;
    const items = [...m.querySelectorAll("button")];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "Escape") { closeMenu(); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); items[(i + 1) % items.length].focus(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
  });

  // --- operations --------------------------------------------------------

  async function post(path, body, desc, check) {
    const li = el("li", { "data-state": "sending", text: desc + ": sending…" });
    $("actions").prepend(li);
    const a = { desc, el: li, state: "sending", check, id: 0 };
    actions.unshift(a);
    actions.length = Math.min(actions.length, 30);
    let r;
    try {
      r = await fetch(path, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: body ? JSON.stringify(body) : null,
      });
    } catch (e) {
      setAction(a, "failed", "not sent: " + e.message);
      return;
    }
    let j = {};
    try { j = await r.json(); } catch (e) { /* empty */ }
    if (!r.ok) { setAction(a, "failed", "refused by the node: " + (j.error || r.statusText)); return; }
    a.id = j.id || 0;
    setAction(a, "queued", "queued (#" + a.id + "), waiting for the token…");
    updateActions();
  }

  function setAction(a, state, text) {
    a.state = state;
    a.el.dataset.state = state;
    a.el.textContent = a.desc + ": " + text;
  }

  // updateActions marks queued actions applied or refused from the ops the
  // node reports (the ring applied them on the token), and says whether the
  // table already shows the effect.
  function updateActions() {
    if (!status) return;
    const ops = new Map((status.ops || []).map((o) => [o.id, o]));
    for (const a of actions) {
      if (a.state !== "queued" && a.state !== "applied-pending") continue;
      const o = ops.get(a.id);
      if (!o) continue;
      if (o.state === "refused") setAction(a, "refused", "refused by the ring: " + (o.error || ""));
      else if (o.state === "applied") {
        const seen = !a.check || a.check(status);
        if (seen) setAction(a, "applied", "applied: the table on the token shows it");
        else setAction(a, "applied-pending", "applied by the ring, waiting for the table to show it…");
      }
    }
  }

  function vipOp(vip, op, node) {
    const desc = op === "move" ? "move " + vip + " to " + node : op + " " + vip;
    let check = null;
    if (op === "move") check = (s) => (s.vips || []).some((v) => v.vip === vip && v.owner === node);
    if (op === "close") check = (s) => (s.vips || []).some((v) => v.vip === vip && v.closed);
    if (op === "open") check = (s) => (s.vips || []).some((v) => v.vip === vip && !v.closed);
    post("/api/v1/vips/" + encodeURIComponent(vip) + "/" + op, op === "move" ? { node } : null, desc, check);
  }

  function nodeOp(node, op) {
    const check = op === "close"
      ? (s) => !(s.vips || []).some((v) => v.owner === node)
      : (s) => (s.node_states || []).some((n) => n.id === node && n.state !== "closed");
    post("/api/v1/nodes/" + encodeURIComponent(node) + "/" + op, null, op + " node " + node, check);
  }

  function switchOp(name, to) {
    const want = to === "on";
    post("/api/v1/switches/" + name + "/" + to, null, "switch " + name + " " + to,
      (s) => (name === "balance" ? s.balancing : s.auto) === want);
  }

  checkSession();
})();
