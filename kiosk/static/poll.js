/* A region marked data-poll="N" (the class grid, imports in progress) is brought up to date
   every N seconds by fetching the page again and swapping that region's contents only: the
   page does not reload, so focus, scroll and what a screen reader is reading stay where they
   are (a <meta refresh> moves them all). The page says when to stop: the new region has no
   data-poll. A button does the same on demand. ES5, XMLHttpRequest: old Android WebViews. */
(function () {
  var regions = document.querySelectorAll("[data-poll]");
  if (!regions.length || !window.DOMParser) { return; }
  function refresh(region, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", window.location.pathname + window.location.search);
    xhr.setRequestHeader("X-Requested-With", "poll");
    xhr.onload = function () {
      if (xhr.status !== 200) { return done && done(false); }
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var fresh = doc.getElementById(region.id);
      if (!fresh) {  // what was running has finished: say so, and stop asking
        region.removeAttribute("data-poll");
        if (region.getAttribute("data-done")) { region.textContent = region.getAttribute("data-done"); }
        return done && done(false);
      }
      region.innerHTML = fresh.innerHTML;
      if (!fresh.hasAttribute("data-poll")) { region.removeAttribute("data-poll"); }
      var stamp = document.getElementById(region.id + "-updated");
      if (stamp) { stamp.textContent = new Date().toLocaleTimeString(document.documentElement.lang); }
      if (done) { done(true); }
    };
    xhr.onerror = function () { if (done) { done(false); } };
    xhr.send();
  }
  function start(region) {
    var seconds = parseFloat(region.getAttribute("data-poll")) || 20;
    (function tick() {
      setTimeout(function () {
        if (!region.hasAttribute("data-poll")) { return; }
        if (document.hidden) { return tick(); }
        refresh(region, function () { tick(); });
      }, seconds * 1000);
    })();
  }
  for (var i = 0; i < regions.length; i++) { start(regions[i]); }
  var buttons = document.querySelectorAll("[data-refresh]");
  for (var j = 0; j < buttons.length; j++) {
    buttons[j].addEventListener("click", function (event) {
      var region = document.getElementById(this.getAttribute("data-refresh"));
      if (!region) { return; }
      event.preventDefault();
      refresh(region);
    });
  }
})();
