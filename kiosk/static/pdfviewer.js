/* PDF documents: pages are images the box renders (server/pdfpages.py), ES5.

   The page works without this script: "Previous page" / "Next page" are links
   (?page=N), and the box marks the document read when it serves the last page.
   This script only makes turning pages quicker: it swaps the image in place,
   fetches the next page ahead, and adds keyboard arrows and swipes. Showing the
   last page in place completes the document through progress.js (the
   "passerelle-progress" event). */
(function () {
  var viewer = document.querySelector(".pdf-viewer");
  if (!viewer || !window.history || !history.replaceState) { return; }
  var resource = document.querySelector(".resource");
  var img = viewer.querySelector(".pdf-page");
  var prev = viewer.querySelector(".pdf-prev");
  var next = viewer.querySelector(".pdf-next");
  var zoomIn = viewer.querySelector(".pdf-zoom-in");
  var zoomOut = viewer.querySelector(".pdf-zoom-out");
  var status = viewer.querySelector(".pdf-status");
  var base = viewer.getAttribute("data-base");
  var count = parseInt(viewer.getAttribute("data-count"), 10);
  var current = parseInt(viewer.getAttribute("data-page"), 10);
  var zoom = viewer.getAttribute("data-zoom");
  var widths = viewer.getAttribute("data-widths").split(",");
  var label = viewer.getAttribute("data-label");  // "Page {page} of {total}", translated
  var completed = current === count;  // served by the box as the last page: it recorded it
  var started = new Date().getTime();

  function text(n) { return label.replace("{page}", String(n)).replace("{total}", String(count)); }
  function srcset(n) {
    var parts = [];
    for (var i = 0; i < widths.length; i++) { parts.push(base + n + "/" + widths[i] + ".webp " + widths[i] + "w"); }
    return parts.join(", ");
  }
  function query(n, z) { return "?page=" + n + (z !== "100" ? "&zoom=" + z : ""); }
  function point(a, href) {
    if (!a) { return; }
    if (href) { a.setAttribute("href", href); a.removeAttribute("aria-disabled"); }
    else { a.removeAttribute("href"); a.setAttribute("aria-disabled", "true"); }
  }
  function retarget(a, n) {  // zoom links keep their zoom and follow the page
    if (a && a.getAttribute("href")) { a.setAttribute("href", a.getAttribute("href").replace(/page=\d+/, "page=" + n)); }
  }
  function ahead(n) {
    if (n < 1 || n > count) { return; }
    var image = new Image();
    image.sizes = img.sizes;  // the browser picks the same width it will show
    image.srcset = srcset(n);
    image.src = base + n + "/" + widths[0] + ".webp";
  }

  function show(n) {
    if (isNaN(n) || n < 1 || n > count || n === current) { return false; }
    current = n;
    img.srcset = srcset(n);
    img.src = base + n + "/" + widths[0] + ".webp";
    img.alt = text(n);
    status.textContent = text(n);
    point(prev, n > 1 ? query(n - 1, zoom) : null);
    point(next, n < count ? query(n + 1, zoom) : null);
    retarget(zoomIn, n);
    retarget(zoomOut, n);
    history.replaceState(null, "", query(n, zoom));
    ahead(n + 1);
    if (n === count && !completed) {
      completed = true;
      var seconds = Math.min(14400, Math.round((new Date().getTime() - started) / 1000));
      var event = document.createEvent("CustomEvent");
      event.initCustomEvent("passerelle-progress", true, false,
                            { type: "completed", fields: { progress: 1, seconds: seconds } });
      (resource || viewer).dispatchEvent(event);
    }
    return true;
  }

  function turn(step) { return show(current + step); }
  prev.addEventListener("click", function (e) { if (turn(-1)) { e.preventDefault(); } });
  next.addEventListener("click", function (e) { if (turn(1)) { e.preventDefault(); } });

  var rtl = document.documentElement.getAttribute("dir") === "rtl";
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName))) { return; }
    if (e.keyCode === 34 || e.keyCode === (rtl ? 37 : 39)) { if (turn(1)) { e.preventDefault(); } }
    if (e.keyCode === 33 || e.keyCode === (rtl ? 39 : 37)) { if (turn(-1)) { e.preventDefault(); } }
  });

  // A swipe across the page turns it; not when zoomed (then a swipe moves around the page).
  var x0 = null, y0 = 0;
  img.addEventListener("touchstart", function (e) {
    var zoomed = zoom !== "100" || (window.visualViewport && window.visualViewport.scale > 1.01);
    x0 = e.touches.length === 1 && !zoomed ? e.touches[0].clientX : null;
    y0 = e.touches.length === 1 ? e.touches[0].clientY : 0;
  });
  img.addEventListener("touchend", function (e) {
    if (x0 === null || !e.changedTouches.length) { return; }
    var dx = e.changedTouches[0].clientX - x0, dy = e.changedTouches[0].clientY - y0;
    x0 = null;
    if (Math.abs(dx) > 60 && Math.abs(dy) < Math.abs(dx) / 2) { turn((dx < 0) !== rtl ? 1 : -1); }
  });

  ahead(current + 1);
})();
