/* One tap per learner: mark attendance without reloading the page.
   Progressive enhancement: without JavaScript each tap submits its form.
   Written in ES5 for old Android WebViews. */
(function () {
  var list = document.querySelector(".attendance");
  if (!list || !window.XMLHttpRequest || !window.FormData) { return; }
  var counter = document.getElementById("present-count");

  list.addEventListener("submit", function (event) {
    var form = event.target;
    var button = form.querySelector("button");
    var field = form.querySelector("input[name=present]");
    event.preventDefault();
    button.disabled = true;
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    request.onload = function () {
      button.disabled = false;
      if (request.status >= 400) { form.submit(); return; }
      var nowPresent = field.value === "1";
      button.className = nowPresent ? "attend present" : "attend";
      button.setAttribute("aria-pressed", nowPresent ? "true" : "false");
      field.value = nowPresent ? "0" : "1";
      counter.textContent = list.querySelectorAll(".attend.present").length;
    };
    request.onerror = function () { button.disabled = false; form.submit(); };
    request.send(new FormData(form));
  });
})();
