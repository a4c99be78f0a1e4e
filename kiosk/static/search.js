/* Suggestions as you type: debounced, one request in flight, cancelled when outdated.
   ES5 for old Android WebViews; without JavaScript the search form works as is. */
(function () {
  var input = document.getElementById("q");
  var list = document.getElementById("suggestions");
  if (!input || !list || !window.XMLHttpRequest) { return; }
  var url = input.getAttribute("data-suggest");
  var timer = null, request = null, lastAsked = "";

  function show(items) {
    list.innerHTML = "";
    for (var i = 0; i < items.length; i++) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.textContent = items[i];
      a.href = "?q=" + encodeURIComponent(items[i]);
      a.setAttribute("role", "option");
      a.setAttribute("dir", "auto");  // content words keep their direction in any interface
      li.appendChild(a);
      list.appendChild(li);
    }
    list.hidden = items.length === 0;
  }
  function ask() {
    var value = input.value.replace(/^\s+|\s+$/g, "");
    if (value === lastAsked) { return; }
    lastAsked = value;
    if (request) { request.abort(); }
    if (!value) { show([]); return; }
    request = new XMLHttpRequest();
    request.open("GET", url + "?q=" + encodeURIComponent(value));
    request.onload = function () {
      if (request.status === 200) {
        try { show(JSON.parse(request.responseText).suggestions || []); } catch (e) { show([]); }
      }
    };
    request.send();
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 250);  // one request per pause in typing, not per key
  });
  input.addEventListener("keydown", function (e) {
    if (e.keyCode === 27) { show([]); }
  });
})();
