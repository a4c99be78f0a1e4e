/* A "Print" button on printable pages (certificates, the impact report). Without
   JavaScript it stays hidden and the browser's own Print command does the same. ES5. */
(function () {
  if (!window.print) { return; }
  var buttons = document.querySelectorAll("[data-print]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function () { window.print(); });
  }
})();
