/* PDF documents on tablets without a PDF viewer (Android Chrome has none), ES5.

   Uses the pdf.js legacy build shipped with the box (static/vendor/pdfjs). One
   page is shown at a time and drawn into a canvas only when it is shown (the
   next one is drawn ahead, quietly). Large buttons: previous, next, zoom.
   Showing the last page completes the document: the viewer tells progress.js
   with a "passerelle-progress" event, and progress.js queues it with the rest.
   Without JavaScript (or if pdf.js fails) the "Open the document" link stays. */
(function () {
  var viewer = document.querySelector(".pdf-viewer");
  var lib = window.pdfjsLib;
  if (!viewer || !lib || !window.HTMLCanvasElement) { return; }
  var resource = document.querySelector(".resource");
  var stage = viewer.querySelector(".pdf-pages");
  var prev = viewer.querySelector(".pdf-prev");
  var next = viewer.querySelector(".pdf-next");
  var zoomIn = viewer.querySelector(".pdf-zoom-in");
  var zoomOut = viewer.querySelector(".pdf-zoom-out");
  var status = viewer.querySelector(".pdf-status");
  var label = viewer.getAttribute("data-label");  // "Page {page} of {total}", translated
  var ZOOMS = [0.75, 1, 1.25, 1.5, 2, 3];
  var zoom = 1;
  var doc = null, current = 1, drawn = {}, completed = false;
  var started = new Date().getTime();

  lib.GlobalWorkerOptions.workerSrc = viewer.getAttribute("data-worker");

  function say(text) { status.textContent = text; }

  function announce() {
    say(label.replace("{page}", String(current)).replace("{total}", String(doc.numPages)));
    prev.disabled = current <= 1;
    next.disabled = current >= doc.numPages;
    zoomOut.disabled = zoom <= ZOOMS[0];
    zoomIn.disabled = zoom >= ZOOMS[ZOOMS.length - 1];
  }

  // One canvas per page and zoom, drawn once, kept while the zoom stays.
  function canvasFor(number) {
    var key = number + "@" + zoom;
    if (drawn[key]) { return drawn[key]; }
    var canvas = document.createElement("canvas");
    canvas.className = "pdf-page";
    canvas.setAttribute("data-page", String(number));
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label.replace("{page}", String(number))
      .replace("{total}", String(doc.numPages)));
    drawn[key] = canvas;
    doc.getPage(number).then(function (page) {
      var style = window.getComputedStyle(stage);
      var inner = stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      var width = Math.max(200, inner || 600);
      var base = page.getViewport({ scale: 1 });
      var scale = (width / base.width) * zoom;
      var ratio = window.devicePixelRatio || 1;
      var viewport = page.getViewport({ scale: scale * ratio });
      canvas.width = Math.floor(viewport.width);
      canvas.height = Math.floor(viewport.height);
      canvas.style.width = Math.floor(viewport.width / ratio) + "px";
      canvas.style.height = Math.floor(viewport.height / ratio) + "px";
      return page.render({ canvasContext: canvas.getContext("2d"), viewport: viewport }).promise;
    }).then(function () {
      canvas.setAttribute("data-rendered", "true");
    }, function () {
      delete drawn[key];
    });
    return canvas;
  }

  function show(number) {
    current = Math.max(1, Math.min(doc.numPages, number));
    while (stage.firstChild) { stage.removeChild(stage.firstChild); }
    stage.appendChild(canvasFor(current));
    if (current < doc.numPages) { canvasFor(current + 1); }  // ready for "next"
    announce();
    if (current === doc.numPages && !completed) {
      completed = true;
      var seconds = Math.min(14400, Math.round((new Date().getTime() - started) / 1000));
      var event = document.createEvent("CustomEvent");
      event.initCustomEvent("passerelle-progress", true, false,
                            { type: "completed", fields: { progress: 1, seconds: seconds } });
      (resource || viewer).dispatchEvent(event);
    }
  }

  function setZoom(step) {
    var i = ZOOMS.indexOf(zoom) + step;
    if (i < 0 || i >= ZOOMS.length) { return; }
    zoom = ZOOMS[i];
    drawn = {};
    show(current);
  }

  prev.addEventListener("click", function () { show(current - 1); });
  next.addEventListener("click", function () { show(current + 1); });
  zoomIn.addEventListener("click", function () { setZoom(1); });
  zoomOut.addEventListener("click", function () { setZoom(-1); });
  document.addEventListener("keydown", function (e) {
    if (!doc || (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName))) { return; }
    var rtl = document.documentElement.getAttribute("dir") === "rtl";
    if (e.keyCode === 34 || e.keyCode === (rtl ? 37 : 39)) { show(current + 1); }
    if (e.keyCode === 33 || e.keyCode === (rtl ? 39 : 37)) { show(current - 1); }
  });

  viewer.hidden = false;
  say(viewer.getAttribute("data-loading"));
  // isEvalSupported: false — never compile code from a document (and the CSP forbids eval).
  lib.getDocument({ url: viewer.getAttribute("data-src"), isEvalSupported: false }).promise
    .then(function (loaded) {
      doc = loaded;
      viewer.className += " is-ready";
      show(1);
    }, function () {
      viewer.hidden = true;  // the "Open the document" link below still works
    });
})();
