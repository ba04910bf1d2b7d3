// Signup forms: fill the hidden time-zone field from the browser, so that a
// reader-local digest reaches the reader at the chosen hour of their own day.
// Without script the field stays empty and the newsletter's zone is used.
document.addEventListener("DOMContentLoaded", function () {
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  document.querySelectorAll("input[data-browser-zone]").forEach(function (field) {
    if (!field.value) { field.value = zone; }
  });
});
