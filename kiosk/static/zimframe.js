/* Inside a ZIM article (the sandboxed frame of the reading page): tells the page around it
   which article is shown, so that its address follows the reader and a reload keeps the
   article. ES5, for old Android WebViews. */
(function () {
  if (window.parent === window || !window.parent.postMessage) { return; }
  try {
    window.parent.postMessage({ passerelleZim: location.pathname, hash: location.hash,
                                title: document.title }, "*");
  } catch (e) { /* the page around is gone: nothing to tell */ }
})();
