// WaddleBot browser source. Served as a file so the page's CSP can forbid
// inline script. Every text from chat goes into the DOM with textContent,
// never as markup: a message can show "<script>" but never run it.
(function () {
  "use strict";
  var body = document.body;
  var stage = document.getElementById("stage");
  var source = body.dataset.source;
  var token = new URLSearchParams(location.search).get("t") || "";
  // The last stream sequence shown, kept across reloads of the page so a
  // reconnect resumes right after it.
  var seqKey = "waddlebot-overlay-seq:" + source + ":" + token.slice(0, 8);
  var last = Number(sessionStorage.getItem(seqKey) || "0");
  var backoff = 500;
  var watchdog = null;
  var queue = [];
  var showing = false;
  var tickerEl = null;

  function applyLook(look) {
    if (!look) { return; }
    body.className = "theme-" + look.theme + " source-" + source;
    stage.style.fontSize = look.font_size + "px";
    stage.style.width = look.width + "px";
    stage.style.height = look.height + "px";
  }
  applyLook({ theme: body.dataset.theme || "transparent", font_size: Number(body.dataset.fontSize), width: Number(body.dataset.width), height: Number(body.dataset.height) });

  function remember(seq) {
    if (seq > last) {
      last = seq;
      sessionStorage.setItem(seqKey, String(last));
    }
  }

  function element(cls, text) {
    var el = document.createElement("div");
    el.className = "item " + cls;
    el.textContent = text || "";
    return el;
  }

  // Alerts wait their turn; other sources replace what they show.
  function nextAlert() {
    if (showing || queue.length === 0) { return; }
    showing = true;
    var item = queue.shift();
    var el = element("alert", item.text);
    if (item.data && item.data.kind) { el.dataset.kind = item.data.kind; }
    stage.appendChild(el);
    setTimeout(function () {
      if (el.parentNode) { el.parentNode.removeChild(el); }
      showing = false;
      nextAlert();
    }, item.duration_ms || 5000);
  }

  function show(item) {
    if (source === "alerts") {
      queue.push(item);
      nextAlert();
      return;
    }
    if (source === "ticker") {
      if (tickerEl && tickerEl.parentNode) { tickerEl.parentNode.removeChild(tickerEl); }
      tickerEl = null;
      if (item.data && item.data.clear) { return; }
      tickerEl = element("ticker", item.text);
      stage.appendChild(tickerEl);
      return;
    }
    // The song-request player (music.js) follows the now-playing items.
    document.dispatchEvent(new CustomEvent("waddlebot:item", { detail: item }));
    while (stage.firstChild) { stage.removeChild(stage.firstChild); }
    var el = element(source, item.text);
    stage.appendChild(el);
    if (item.duration_ms) {
      setTimeout(function () { if (el.parentNode) { el.parentNode.removeChild(el); } }, item.duration_ms);
    }
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host +
      "/overlay/ws?t=" + encodeURIComponent(token) + (last > 0 ? "&after=" + last : "");
    var ws = new WebSocket(url);
    function arm() {
      clearTimeout(watchdog);
      // The server sends a ping frame every 20 s: silence for much longer
      // means a dead connection the browser has not noticed.
      watchdog = setTimeout(function () { ws.close(); }, 65000);
    }
    ws.onopen = function () { backoff = 500; arm(); };
    ws.onmessage = function (ev) {
      arm();
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "hello") {
        applyLook(msg.look);
        // The server starts from what the page sent, or from now.
        last = msg.seq;
        sessionStorage.setItem(seqKey, String(last));
      } else if (msg.type === "item" && msg.seq > last) {
        remember(msg.seq);
        show(msg.item || {});
      }
    };
    ws.onclose = function () {
      clearTimeout(watchdog);
      var wait = backoff + Math.floor(Math.random() * backoff / 2);
      backoff = Math.min(backoff * 2, 30000);
      setTimeout(connect, wait);
    };
  }
  connect();
}());
