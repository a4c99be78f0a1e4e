// The coordinator's Kolibri topic picker: the size of the ticked topics, added up as they are ticked,
// written as the page writes sizes (the units come from the page). A topic inside a ticked topic is
// already counted by it. ES5 for old Android browsers.
(function () {
  var form = document.querySelector(".kolibri-topics");
  var out = document.getElementById("kolibri-total");
  if (!form || !out) { return; }
  var units = JSON.parse(out.getAttribute("data-units"));
  // Latin digits, as the box's own sizes are written (Babel's default in every language of the box).
  var lang = out.getAttribute("data-locale") || undefined;
  var boxes = form.querySelectorAll("input[data-size]");
  var byNode = {};
  for (var i = 0; i < boxes.length; i++) { byNode[boxes[i].getAttribute("data-node")] = boxes[i]; }
  function insideTicked(box) {
    var parent = box.getAttribute("data-parent");
    while (parent && byNode[parent]) {
      if (byNode[parent].checked) { return true; }
      parent = byNode[parent].getAttribute("data-parent");
    }
    return false;
  }
  function number(value, digits) {
    try {
      return value.toLocaleString(lang, {maximumFractionDigits: digits});
    } catch (e) {
      return String(Math.round(value * 10) / 10);
    }
  }
  function format(size) {  // the same scales and rounding as the box's format_size
    var scales = [["gigabyte", 1e9], ["megabyte", 1e6], ["kilobyte", 1e3]];
    for (var i = 0; i < scales.length; i++) {
      if (size >= scales[i][1]) {
        var value = size / scales[i][1];
        return units[scales[i][0]].replace("{n}", number(value < 100 ? Math.round(value * 10) / 10 : Math.round(value), 1));
      }
    }
    return units.byte.replace("{n}", number(size, 0));
  }
  function update() {
    var total = 0;
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked && !insideTicked(boxes[i])) { total += parseInt(boxes[i].getAttribute("data-size"), 10) || 0; }
    }
    out.textContent = format(total);
  }
  form.addEventListener("change", update);
  update();
})();
