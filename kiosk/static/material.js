/* Read an uploaded video's or sound's duration in the browser (the box may have
   no media tools to measure it). ES5. */
(function () {
  var input = document.getElementById("f-file");
  var duration = document.getElementById("f-duration");
  if (!input || !duration || !window.URL || !URL.createObjectURL) { return; }
  input.addEventListener("change", function () {
    var file = input.files && input.files[0];
    duration.value = "";
    if (!file || !/^(video|audio)\//.test(file.type)) { return; }
    var media = document.createElement(file.type.indexOf("video") === 0 ? "video" : "audio");
    media.preload = "metadata";
    media.onloadedmetadata = function () {
      if (isFinite(media.duration)) { duration.value = String(media.duration); }
      URL.revokeObjectURL(media.src);
    };
    media.src = URL.createObjectURL(file);
  });
})();
