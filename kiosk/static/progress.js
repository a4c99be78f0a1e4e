/* Learner progress on resource and exercise pages, written for old Android WebViews (ES5).

   Events are queued in localStorage first, then sent to the box in batches.
   If the Wi-Fi drops or the tablet sleeps, they wait and are sent when the box
   answers again; each carries an event_id made here, so an event sent twice
   (the answer was lost, not the request) is counted once by the box.
   Events the box could not store itself (its disk was full) come in the page's
   data-pending attribute and join the same queue. */
(function () {
  var page = document.querySelector("[data-learner]");
  var token = document.querySelector('meta[name="csrf-token"]');
  if (!page || !window.localStorage || !window.XMLHttpRequest || !window.JSON) { return; }
  var learner = page.getAttribute("data-learner");
  var pack = page.getAttribute("data-pack");
  var node = page.getAttribute("data-node");
  var key = "passerelle-queue-" + learner;
  var sending = false;

  function uid() {
    var a = new Uint8Array(16), i, s = "";
    if (window.crypto && window.crypto.getRandomValues) { window.crypto.getRandomValues(a); }
    else { for (i = 0; i < 16; i++) { a[i] = Math.floor(Math.random() * 256); } }
    for (i = 0; i < 16; i++) { s += (a[i] < 16 ? "0" : "") + a[i].toString(16); }
    return s;
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; }
  }
  function save(queue) {
    try { localStorage.setItem(key, JSON.stringify(queue.slice(-2000))); } catch (e) { /* full */ }
  }
  function track(type, fields) {
    // occurred_at is the tablet's clock; sent_at (below) lets the box correct a wrong one.
    var event = { event_id: uid(), pack_id: pack, node_id: node, type: type,
                  occurred_at: new Date().toISOString() };
    for (var k in fields) { if (fields.hasOwnProperty(k)) { event[k] = fields[k]; } }
    var queue = load();
    queue.push(event);
    save(queue);
    flush();
  }
  function adopt(text) {
    var given, queue = load(), have = {}, i;
    try { given = JSON.parse(text || "[]"); } catch (e) { return; }
    for (i = 0; i < queue.length; i++) { have[queue[i].event_id] = true; }
    for (i = 0; i < given.length; i++) {
      if (given[i] && given[i].event_id && !have[given[i].event_id]) {
        // Made as the page was: dated by this tablet's clock, like the events made here.
        given[i].occurred_at = given[i].occurred_at || new Date().toISOString();
        queue.push(given[i]);
      }
    }
    save(queue);
  }
  function flush() {
    var queue = load();
    if (sending || !queue.length || !token) { return; }
    var batch = queue.slice(0, 200);
    var request = new XMLHttpRequest();
    sending = true;
    request.open("POST", "/api/v1/progress");
    request.setRequestHeader("Content-Type", "application/json");
    request.setRequestHeader("X-CSRFToken", token.getAttribute("content"));
    request.onload = function () {
      sending = false;
      // 200: stored (or refused one by one: a resource this box does not hold); 400: refused
      // as invalid. Resending cannot help either. Anything else (507: the box's disk is
      // full; 5xx; 401 after a sign-out) keeps them for later.
      if (request.status === 200 || request.status === 400) {
        var sent = {}, rest = [], i;
        for (i = 0; i < batch.length; i++) { sent[batch[i].event_id] = true; }
        queue = load();
        for (i = 0; i < queue.length; i++) { if (!sent[queue[i].event_id]) { rest.push(queue[i]); } }
        save(rest);
        if (rest.length) { flush(); }
      }
    };
    request.onerror = function () { sending = false; };
    request.send(JSON.stringify({ events: batch, sent_at: new Date().toISOString() }));
  }
  // Other viewers on the page (the PDF viewer) report through this event:
  // detail = { type: "completed", fields: { progress: 1, ... } }.
  page.addEventListener("passerelle-progress", function (e) {
    if (e.detail && e.detail.type) { track(e.detail.type, e.detail.fields || {}); }
  });
  window.addEventListener("online", flush);
  setInterval(flush, 15000);
  adopt(page.getAttribute("data-pending"));
  flush();

  // Video and audio: resume, speed, progress every 10 s, completed at 90%.
  var media = page.querySelector("video, audio");
  if (media) {
    var resume = parseFloat(page.getAttribute("data-resume")) || 0;
    var best = 0, lastSent = 0, watched = 0, lastTime = null, done = false;
    media.addEventListener("loadedmetadata", function () {
      if (resume > 0 && resume < media.duration - 5) { media.currentTime = resume; }
    });
    var speedBox = page.querySelector(".speed");
    if (speedBox) {
      speedBox.hidden = false;
      speedBox.querySelector("select").addEventListener("change", function () {
        media.playbackRate = parseFloat(this.value);
      });
    }
    media.addEventListener("timeupdate", function () {
      var now = media.currentTime;
      if (lastTime !== null && now > lastTime && now - lastTime < 2) { watched += now - lastTime; }
      lastTime = now;
      if (!media.duration) { return; }
      best = Math.max(best, now / media.duration);
      if (!done && best >= 0.9) {
        done = true;
        track("completed", { progress: 1, position: now, seconds: Math.round(watched) });
        watched = 0;
      } else if (now - lastSent >= 10 || lastSent - now >= 10) {
        lastSent = now;
        track("progress", { progress: Math.min(1, best), position: Math.round(now),
                            seconds: Math.round(watched) });
        watched = 0;
      }
    });
    media.addEventListener("ended", function () {
      if (!done) { done = true; track("completed", { progress: 1, position: 0 }); }
    });
  }

  // Articles: read to the end once the end of the text has been on screen.
  var end = page.querySelector(".end-of-article");
  if (end) {
    var started = new Date().getTime();
    var MIN_MS = 5000;  // a glance at a short article is not reading it
    var finish = function () {
      var elapsed = new Date().getTime() - started;
      if (elapsed < MIN_MS) { setTimeout(finish, MIN_MS - elapsed); return; }
      track("completed", { progress: 1, seconds: Math.min(14400, Math.round(elapsed / 1000)) });
    };
    if (window.IntersectionObserver) {
      var observer = new IntersectionObserver(function (entries) {
        if (entries[0].isIntersecting) { observer.disconnect(); finish(); }
      });
      observer.observe(end);
    } else {
      var onScroll = function () {
        if (end.getBoundingClientRect().top < window.innerHeight) {
          window.removeEventListener("scroll", onScroll);
          finish();
        }
      };
      window.addEventListener("scroll", onScroll);
      onScroll();
    }
  }
})();
