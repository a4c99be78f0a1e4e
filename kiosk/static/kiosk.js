/* Shared tablets: after N idle minutes a signed-in learner is signed out and the
   tablet goes back to the sign-in screen, so the next person never continues as
   someone else. The box also refuses idle sessions on its side. ES5. */
(function () {
  var body = document.body;
  var minutes = parseFloat(body.getAttribute("data-idle-minutes"));
  var form = document.querySelector("form.signout");
  if (!minutes || !form) { return; }
  var timer = null;
  function reset() {
    clearTimeout(timer);
    timer = setTimeout(function () { form.submit(); }, minutes * 60 * 1000);
  }
  var events = ["touchstart", "mousedown", "keydown", "scroll", "input"];
  for (var i = 0; i < events.length; i++) {
    window.addEventListener(events[i], reset, { passive: true, capture: true });
  }
  // A playing video counts as activity: nobody should be signed out mid-lesson.
  document.addEventListener("timeupdate", reset, true);
  reset();
})();
