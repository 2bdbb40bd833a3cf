/* crypto4h report: sortable tables and the trades browser. No libraries, no network. */
(function () {
  "use strict";
  var MINUS = "\u2212";

  function signed(text, v, sign) {
    if (text.charAt(0) === "-") return MINUS + text.slice(1);
    return sign && v > 0 ? "+" + text : text;
  }
  function fixed(v, d, sign) {
    var t = v.toFixed(d);
    if (Number(t) === 0) t = (0).toFixed(d);
    return signed(t, v, sign);
  }
  var FORMAT = {
    pct: function (v) { return fixed(v * 100, 2, true) + "%"; },
    share: function (v) { return fixed(v * 100, 1, false) + "%"; },
    int: function (v) { return v.toLocaleString("en-US"); },
    num: function (v) {
      var a = Math.abs(v);
      if (a !== 0 && (a >= 1e5 || a < 1e-3)) return signed(v.toExponential(2), v, false);
      return signed(String(Number(v.toPrecision(4))), v, false);
    },
    price: function (v) {
      if (v === 0) return "0";
      var d = Math.min(10, Math.max(0, 4 - Math.floor(Math.log10(Math.abs(v)))));
      return signed(v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }), v, false);
    },
    score: function (v) { return fixed(v, 3, false); },
    time: String,
    text: String
  };

  function compare(a, b, numeric) {
    var na = a === null || a === undefined || a === "", nb = b === null || b === undefined || b === "";
    if (na || nb) return na && nb ? 0 : na ? 1 : -1;  // missing values last in both directions
    if (numeric) return a - b;
    return String(a).localeCompare(String(b));
  }

  /* small server-rendered tables: td[data-v] holds the raw value */
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var numeric = th.getAttribute("data-num") === "1";
        var dir = th.getAttribute("aria-sort") === (numeric ? "descending" : "ascending")
          ? (numeric ? "ascending" : "descending") : (numeric ? "descending" : "ascending");
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = r1.cells[col].getAttribute("data-v"), b = r2.cells[col].getAttribute("data-v");
          if (numeric) { a = a === "" ? null : Number(a); b = b === "" ? null : Number(b); }
          var c = compare(a, b, numeric);
          return (a === null || a === "" || b === null || b === "") ? c : (dir === "ascending" ? c : -c);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);

  /* trades browser: rows come from JSON, state lives in the address (#trades:sort=...&dir=...) */
  var root = document.getElementById("trades");
  var dataEl = document.getElementById("trades-data");
  if (!root || !dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var cols = data.columns, rows = data.rows;
  var idx = {};
  cols.forEach(function (c, i) { idx[c.key] = i; });
  var NUMERIC = { pct: 1, share: 1, int: 1, num: 1, price: 1, score: 1 };
  var table = document.getElementById("trades-table");
  var $ = function (id) { return document.getElementById(id); };
  var state = { sort: "decision_time", dir: "asc", q: "", symbol: "", outcome: "", run: "", size: 50, page: 1, features: false };

  function readHash() {
    var h = decodeURIComponent(location.hash || "");
    if (h.indexOf("#trades:") !== 0) return;
    h.slice(8).split("&").forEach(function (pair) {
      var i = pair.indexOf("="); if (i < 0) return;
      var k = pair.slice(0, i), v = pair.slice(i + 1);
      if (k === "size" || k === "page") state[k] = Math.max(0, parseInt(v, 10) || 0);
      else if (k === "features") state.features = v === "1";
      else if (k in state) state[k] = v;
    });
    if (state.page < 1) state.page = 1;
  }
  function writeHash() {
    var parts = ["sort", "dir", "q", "symbol", "outcome", "run", "size", "page"].map(function (k) {
      return k + "=" + encodeURIComponent(state[k]);
    });
    parts.push("features=" + (state.features ? 1 : 0));
    try { history.replaceState(null, "", "#trades:" + parts.join("&")); } catch (e) { /* file:// in some browsers */ }
  }

  function visibleCols() {
    return cols.filter(function (c) { return state.features || c.group !== "detail"; });
  }
  function filtered() {
    var q = state.q.toLowerCase(), ret = idx.return_pct, vd = idx["void"], sym = idx.symbol, run = idx.run;
    var out = rows.filter(function (r) {
      if (state.symbol && r[sym] !== state.symbol) return false;
      if (state.run && run !== undefined && r[run] !== state.run) return false;
      if (state.outcome === "void" && !(vd !== undefined && r[vd])) return false;
      if (state.outcome === "win" && !(r[ret] > 0)) return false;
      if (state.outcome === "loss" && !(r[ret] !== null && r[ret] <= 0)) return false;
      if (q) {
        var hay = [r[sym], r[idx.decision_time], run !== undefined ? r[run] : "", r[idx.exit_time]].join(" ").toLowerCase();
        if (hay.indexOf(q) < 0) return false;
      }
      return true;
    });
    var k = idx[state.sort];
    if (k !== undefined) {
      var numeric = !!NUMERIC[cols[k].kind], sign = state.dir === "desc" ? -1 : 1;
      out = out.map(function (r, i) { return [r, i]; });
      out.sort(function (x, y) {
        var a = x[0][k], b = y[0][k];
        var missing = a === null || b === null;
        var c = compare(a, b, numeric);
        return (missing ? c : sign * c) || x[1] - y[1];
      });
      out = out.map(function (p) { return p[0]; });
    }
    return out;
  }
  function cell(v, kind) {
    var td = document.createElement("td");
    if (kind === "void") {
      if (v) { var b = document.createElement("span"); b.className = "badge"; b.textContent = "void"; td.appendChild(b); }
      td.setAttribute("data-v", v ? "1" : "0");
      return td;
    }
    td.className = NUMERIC[kind] ? "num" : "txt";
    if (v === null || v === undefined) { td.textContent = "\u2013"; td.setAttribute("data-v", ""); return td; }
    td.textContent = (FORMAT[kind] || String)(v);
    td.setAttribute("data-v", String(v));
    if (kind === "pct" && v < 0) td.className += " neg";
    return td;
  }
  function render() {
    var vis = visibleCols();
    var head = document.createElement("tr");
    vis.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c.label;
      th.className = NUMERIC[c.kind] ? "num" : "txt";
      th.setAttribute("data-key", c.key);
      th.setAttribute("scope", "col");
      if (c.key === state.sort) th.setAttribute("aria-sort", state.dir === "desc" ? "descending" : "ascending");
      th.addEventListener("click", function () {
        if (state.sort === c.key) state.dir = state.dir === "desc" ? "asc" : "desc";
        else { state.sort = c.key; state.dir = NUMERIC[c.kind] ? "desc" : "asc"; }
        state.page = 1; render();
      });
      head.appendChild(th);
    });
    table.tHead.innerHTML = "";
    table.tHead.appendChild(head);
    var list = filtered(), size = state.size > 0 ? state.size : list.length || 1;
    var pages = Math.max(1, Math.ceil(list.length / size));
    if (state.page > pages) state.page = pages;
    var start = (state.page - 1) * size, page = list.slice(start, start + size);
    var body = document.createElement("tbody");
    page.forEach(function (r) {
      var tr = document.createElement("tr");
      vis.forEach(function (c) { tr.appendChild(cell(r[idx[c.key]], c.kind)); });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    $("tr-status").textContent = list.length
      ? "Trades " + (start + 1).toLocaleString("en-US") + "\u2013" + (start + page.length).toLocaleString("en-US") +
        " of " + list.length.toLocaleString("en-US") + " shown (" + rows.length.toLocaleString("en-US") + " in this report)"
      : "No trade matches (" + rows.length.toLocaleString("en-US") + " in this report)";
    $("tr-prev").disabled = state.page <= 1;
    $("tr-next").disabled = state.page >= pages;
    root.setAttribute("data-shown", String(list.length));
    writeHash();
  }
  function csv() {
    var vis = cols, list = filtered();
    var esc = function (v) {
      if (v === null || v === undefined) return "";
      var s = String(v);
      return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    var lines = [vis.map(function (c) { return esc(c.key); }).join(",")];
    list.forEach(function (r) { lines.push(vis.map(function (c) { return esc(r[idx[c.key]]); }).join(",")); });
    var blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "trades.csv";
    document.body.appendChild(a); a.click(); a.remove();
  }

  readHash();
  var bind = function (id, key, ev, get) {
    var el = $(id); if (!el) return;
    if (key === "features") el.checked = state.features; else el.value = String(state[key]);
    el.addEventListener(ev, function () { state[key] = get(el); state.page = 1; render(); });
  };
  bind("tr-q", "q", "input", function (el) { return el.value.trim(); });
  bind("tr-symbol", "symbol", "change", function (el) { return el.value; });
  bind("tr-outcome", "outcome", "change", function (el) { return el.value; });
  bind("tr-run", "run", "change", function (el) { return el.value; });
  bind("tr-size", "size", "change", function (el) { return parseInt(el.value, 10) || 0; });
  bind("tr-features", "features", "change", function (el) { return el.checked; });
  $("tr-prev").addEventListener("click", function () { state.page -= 1; render(); });
  $("tr-next").addEventListener("click", function () { state.page += 1; render(); });
  $("tr-csv").addEventListener("click", csv);
  render();
})();
