/* The exercise player in one request per answer (ES5 for old Android WebViews).

   Progressive enhancement: without this script every step is a form post and a page
   (an answer is four requests: "Check", its feedback page, "Next question", the next
   page). With it, "Check" posts the question's fields as JSON to the form's data-check
   address; the box checks and records the answer exactly as it does for the form and
   answers with the page's body twice: showing the feedback, and showing the next
   question. "Next question" and "Keep practising" then show the latter with no request.
   A hint, a full disk or any reply this script does not expect falls back to the form
   itself. A reply lost to the Wi-Fi: pressing "Check" again sends the same attempt, which
   the box records once and answers as before. */
(function () {
  var body = document.getElementById("practice-body");
  var token = document.querySelector('meta[name="csrf-token"]');
  if (!body || !token || !window.XMLHttpRequest || !window.JSON) { return; }
  var following = null;  // the body showing the next question, from the last answer
  var pressed = null;    // the submit button pressed (old WebViews have no event.submitter)
  var busy = false;

  body.addEventListener("click", function (e) {
    var t = e.target;
    while (t && t !== body && t.tagName !== "BUTTON") { t = t.parentNode; }
    pressed = t && t.tagName === "BUTTON" && t.type === "submit" ? t : null;
  });

  body.addEventListener("submit", function (e) {
    var form = e.target;
    // Enter in a field presses the form's first button, "Check".
    var action = pressed && pressed.form === form ? pressed.value : "check";
    pressed = null;
    if (form.getAttribute("data-check") && action === "check") {
      e.preventDefault();
      check(form);
    } else if (following && (" " + form.className + " ").indexOf(" practice-next ") >= 0) {
      e.preventDefault();
      var html = following;
      following = null;
      // The address the form would have led to (after "Keep practising", ?more=1), so a
      // reload stays on the same path.
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", form.getAttribute("action").split("#")[0]);
      }
      show(html);
      var question = document.getElementById("question");
      if (question && question.scrollIntoView) { question.scrollIntoView(); }
    }
  });

  function fields(form) {
    var out = {}, i, j, el, skip = { csrf_token: 1, attempt: 1, hints_shown: 1, action: 1 };
    for (i = 0; i < form.elements.length; i++) {
      el = form.elements[i];
      if (!el.name || el.disabled || skip[el.name] || el.type === "submit" || el.type === "button") {
        continue;
      }
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) { continue; }
      if (!out[el.name]) { out[el.name] = []; }
      if (el.tagName === "SELECT" && el.multiple) {
        for (j = 0; j < el.options.length; j++) {
          if (el.options[j].selected) { out[el.name].push(el.options[j].value); }
        }
      } else {
        out[el.name].push(el.value);
      }
    }
    return out;
  }

  function check(form) {
    if (busy) { return; }  // a double tap sends one request
    busy = true;
    var request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("data-check"));
    request.setRequestHeader("Content-Type", "application/json");
    request.setRequestHeader("X-CSRFToken", token.getAttribute("content"));
    request.timeout = 30000;
    request.onload = function () {
      var reply = null;
      busy = false;
      try { reply = JSON.parse(request.responseText); } catch (err) { reply = null; }
      if (request.status === 200 && reply && reply.feedback) {
        following = reply.next;
        show(reply.feedback);
        var feedback = document.getElementById("feedback");
        if (feedback && feedback.focus) { feedback.focus(); }
      } else if (request.status === 422 && reply && reply.error) {
        problem(form, reply.error.message);
      } else if (request.status === 409) {
        window.location.reload();  // the question was answered elsewhere: where the run is
      } else {
        form.submit();  // as without this script (a full disk, a sign-out, an old page)
      }
    };
    request.onerror = request.ontimeout = function () {
      busy = false;
      problem(form, form.getAttribute("data-offline"));
    };
    request.send(JSON.stringify({ attempt: form.elements.attempt.value, answer: fields(form) }));
  }

  function problem(form, message) {
    var note = document.getElementById("answer-error");
    if (!note) {
      note = document.createElement("p");
      note.id = "answer-error";
      note.className = "error-text";
      note.setAttribute("role", "alert");
      var prompt = document.getElementById("prompt");
      form.insertBefore(note, prompt ? prompt.nextSibling : form.firstChild);
    }
    note.textContent = message || "";
    var answer = document.getElementById("answer");
    if (answer) { answer.setAttribute("aria-invalid", "true"); }
  }

  function show(html) {
    body.innerHTML = html;
    if (window.passerelleNumpad) { window.passerelleNumpad(body); }
  }
})();
