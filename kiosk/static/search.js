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

/* Snippets of encyclopedia hits found by a ZIM's own (Xapian) index: the page is shown
   without them (each one means reading its article: most of the page's time), then one
   request per ZIM fills them in. Without JavaScript those hits show their titles only. */
(function () {
  if (!document.querySelectorAll || !window.XMLHttpRequest || !window.JSON) { return; }
  var input = document.getElementById("q");
  var query = input ? input.defaultValue : "";
  var waiting = document.querySelectorAll("p[data-snippet]");
  if (!query || !waiting.length) { return; }
  var byUrl = {}, urls = [], i;
  for (i = 0; i < waiting.length; i++) {
    var url = waiting[i].getAttribute("data-snippet");
    if (!byUrl[url]) { byUrl[url] = []; urls.push(url); }
    byUrl[url].push(waiting[i]);
  }
  function fill(places) {
    var ask = "?q=" + encodeURIComponent(query);
    for (var j = 0; j < places.length; j++) {
      ask += "&path=" + encodeURIComponent(places[j].getAttribute("data-path"));
    }
    var request = new XMLHttpRequest();
    request.open("GET", places.url + ask);
    request.onload = function () {
      if (request.status !== 200) { return; }
      var found;
      try { found = JSON.parse(request.responseText).snippets || {}; } catch (e) { return; }
      for (var k = 0; k < places.length; k++) {
        var html = found[places[k].getAttribute("data-path")];
        if (html) {
          places[k].innerHTML = html;  // escaped by the box, words marked with <mark>
          places[k].hidden = false;
        }
      }
    };
    request.send();
  }
  for (i = 0; i < urls.length; i++) {
    byUrl[urls[i]].url = urls[i];
    fill(byUrl[urls[i]]);
  }
})();
