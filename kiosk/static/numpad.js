/* An on-screen number pad under number answers (input[data-numpad]).
   Progressive enhancement: without JavaScript the field still takes the tablet's own
   keyboard (inputmode="decimal"). Big keys help people who find the small system
   keyboard hard to use. Written in ES5 for old Android WebViews.
   Also: a page showing feedback moves the focus to it, so screen readers read it.
   practice.js calls window.passerelleNumpad(element) for a question it shows itself. */
(function () {
  var feedback = document.getElementById("feedback");
  if (feedback && feedback.focus) { feedback.focus(); }

  function addPads(root) {
    var inputs = root.querySelectorAll("input[data-numpad]");
    var i;
    for (i = 0; i < inputs.length; i++) { addPad(inputs[i]); }
  }
  window.passerelleNumpad = addPads;
  addPads(document);

  function addPad(input) {
    var pad = document.createElement("div");
    var keys = ["7", "8", "9", "4", "5", "6", "1", "2", "3", "-", "0",
                input.getAttribute("data-numpad-decimal") || "."];
    var k;
    pad.className = "numpad";
    pad.setAttribute("role", "group");
    pad.setAttribute("aria-label", input.getAttribute("data-numpad-label") || "");
    for (k = 0; k < keys.length; k++) { pad.appendChild(key(input, keys[k], keys[k], false)); }
    pad.appendChild(key(input, "\u232B", input.getAttribute("data-numpad-delete") || "", true));
    input.parentNode.insertBefore(pad, input.nextSibling);
  }

  function key(input, text, label, erase) {
    var button = document.createElement("button");
    button.type = "button";  // never submits the form
    button.className = erase ? "numpad-delete" : "numpad-key";
    button.appendChild(document.createTextNode(text));
    if (label !== text) { button.setAttribute("aria-label", label); }
    button.addEventListener("click", function () {
      var value = input.value;
      var max = parseInt(input.getAttribute("maxlength"), 10) || 40;
      if (erase) {
        input.value = value.substring(0, value.length - 1);
      } else if (value.length < max) {
        input.value = value + text;
      }
      input.removeAttribute("aria-invalid");
    });
    return button;
  }
})();
