// The coordinator's Kolibri topic picker: the size of the ticked topics, added up as they are ticked.
// A topic inside a ticked topic is already counted by it. ES5 for old Android browsers.
(function () {
  var form = document.querySelector(".kolibri-topics");
  var out = document.getElementById("kolibri-total");
  if (!form || !out) { return; }
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
  function update() {
    var total = 0;
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked && !insideTicked(boxes[i])) { total += parseInt(boxes[i].getAttribute("data-size"), 10) || 0; }
    }
    var mb = Math.round(total / 104857.6) / 10;
    out.textContent = out.getAttribute("data-template").replace("{n}", mb.toFixed(1));
  }
  form.addEventListener("change", update);
  update();
})();
