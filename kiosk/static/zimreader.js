/* The ZIM reading page: the article frame tells which article it shows (zimframe.js), and the
   page's address follows it (history.replaceState: no new history entry, the frame has its
   own), so a reload or a shared address opens that article, not the main page again.
   ES5, for old Android WebViews. */
(function () {
  var frame = document.querySelector("iframe[data-entry-prefix]");
  if (!frame || !window.addEventListener || !window.history || !history.replaceState) { return; }
  var entry = frame.getAttribute("data-entry-prefix");  // /zim/<uuid>/
  var read = frame.getAttribute("data-read-prefix");    // /read/<uuid>/
  var site = document.title.split(" · ").slice(1).join(" · ");
  window.addEventListener("message", function (e) {
    var data = e.data;
    // Only this frame, and only an article of this ZIM: the address never leaves the reader.
    if (e.source !== frame.contentWindow || !data || typeof data.passerelleZim !== "string" ||
        data.passerelleZim.indexOf(entry) !== 0) { return; }
    var path = data.passerelleZim.slice(entry.length);
    if (!path || /[?#\\]|^\/|(^|\/)\.\.(\/|$)/.test(path)) { return; }
    var hash = typeof data.hash === "string" && /^#[^<>"\s]{0,200}$/.test(data.hash) ? data.hash : "";
    history.replaceState(null, "", read + path + hash);
    if (typeof data.title === "string" && data.title) {
      document.title = data.title.slice(0, 200) + (site ? " · " + site : "");
    }
  });
})();
