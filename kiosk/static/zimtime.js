/* Time spent reading a ZIM article (Wikipedia...), for the learner's progress and the reports.
   ES5 for old Android WebViews. Counts the seconds the page is visible, and reports them every
   minute and when the page is left (sendBeacon survives the page going away). Each report has
   its own random id, so one sent twice counts once. */
(function () {
  var page = document.querySelector("[data-zim-time]");
  var token = document.querySelector('meta[name="csrf-token"]');
  if (!page || !token || !window.FormData) { return; }
  var url = page.getAttribute("data-zim-time");
  var path = page.getAttribute("data-path");
  var seconds = 0;

  function beat() {
    var a = new Uint8Array(16), i, s = "";
    if (window.crypto && window.crypto.getRandomValues) { window.crypto.getRandomValues(a); }
    else { for (i = 0; i < 16; i++) { a[i] = Math.floor(Math.random() * 256); } }
    for (i = 0; i < 16; i++) { s += (a[i] < 16 ? "0" : "") + a[i].toString(16); }
    return s;
  }
  function report() {
    if (seconds < 1) { return; }
    var form = new FormData();
    form.append("csrf_token", token.getAttribute("content"));
    form.append("path", path);
    form.append("seconds", String(Math.min(14400, seconds)));
    form.append("beat", beat());
    seconds = 0;
    if (navigator.sendBeacon && navigator.sendBeacon(url, form)) { return; }
    var request = new XMLHttpRequest();
    request.open("POST", url);
    request.send(form);
  }
  setInterval(function () {
    if (!document.hidden) { seconds += 1; }
    if (seconds >= 60) { report(); }
  }, 1000);
  document.addEventListener("visibilitychange", function () { if (document.hidden) { report(); } });
  window.addEventListener("pagehide", report);
})();
