// WaddleBot song-request player for the now-playing browser source.
// overlay.js hands every now-playing item over as a "waddlebot:item"
// event; when the item names a YouTube song, this file plays it through a
// player adapter and, when the song ends (or cannot play), reports it to
// the server so the queue advances. Spotify songs play on the streamer's
// own device, so for them this only stops any YouTube song.
//
// An adapter is a function (container, events) returning
// { load(id), pause(), play(), stop() } that calls events.ended() when a
// song finishes and events.error(code) when it cannot play. The real one
// wraps the YouTube IFrame player; a page may set window.waddlebotPlayer
// to another adapter first (tests use a stand-in that needs no internet).
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("t") || "";
  var container = null;
  var player = null;
  var entry = 0;
  var reported = {};

  function youtubeAdapter(box, events) {
    var yt = null;
    var ready = false;
    var pending = null;
    var el = document.createElement("div");
    el.id = "waddlebot-youtube";
    box.appendChild(el);
    function create() {
      yt = new window.YT.Player(el.id, {
        width: "100%", height: "100%",
        playerVars: { autoplay: 1, controls: 0, rel: 0, playsinline: 1 },
        events: {
          onReady: function () {
            ready = true;
            if (pending) { pending(); pending = null; }
          },
          onStateChange: function (e) { if (e.data === 0) { events.ended(); } },
          // 100 removed, 101/150 not embeddable, 2/5 bad id or HTML5 error.
          onError: function (e) { events.error(e.data); }
        }
      });
    }
    if (window.YT && window.YT.Player) {
      create();
    } else {
      var prev = window.onYouTubeIframeAPIReady;
      window.onYouTubeIframeAPIReady = function () { if (prev) { prev(); } create(); };
      var s = document.createElement("script");
      s.src = "https://www.youtube.com/iframe_api";
      document.head.appendChild(s);
    }
    function when(fn) { if (ready) { fn(); } else { pending = fn; } }
    return {
      load: function (id) { when(function () { yt.loadVideoById(id); }); },
      pause: function () { when(function () { yt.pauseVideo(); }); },
      play: function () { when(function () { yt.playVideo(); }); },
      stop: function () { when(function () { yt.stopVideo(); }); }
    };
  }

  function report(id) {
    if (!id || reported[id]) { return; }
    reported[id] = true;
    var tries = 0;
    function send() {
      fetch("/overlay/music/ended?t=" + encodeURIComponent(token), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ entry: id }), credentials: "omit"
      }).then(function (r) {
        if (r.status >= 500 && tries < 5) { tries++; setTimeout(send, 1000 * tries); }
      }, function () {
        if (tries < 5) { tries++; setTimeout(send, 1000 * tries); }
      });
    }
    send();
  }

  function ensure() {
    if (player) { return player; }
    container = document.createElement("div");
    container.id = "waddlebot-player";
    container.className = "player";
    document.body.appendChild(container);
    var make = window.waddlebotPlayer || youtubeAdapter;
    player = make(container, {
      ended: function () { report(entry); },
      // A song that cannot play is over as far as the queue goes.
      error: function () { report(entry); }
    });
    return player;
  }

  document.addEventListener("waddlebot:item", function (ev) {
    var d = (ev.detail && ev.detail.data) || {};
    if (d.stop || d.player !== "youtube") {
      if (player) { player.stop(); }
      entry = 0;
      document.body.dataset.playing = "";
      return;
    }
    var p = ensure();
    if (d.entry !== entry) {
      entry = d.entry;
      document.body.dataset.playing = String(d.track_id);
      p.load(String(d.track_id));
    }
    if (d.paused) { p.pause(); } else { p.play(); }
    document.body.dataset.paused = d.paused ? "1" : "";
  });
}());
