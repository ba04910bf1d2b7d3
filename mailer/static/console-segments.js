// Live count of an audience while its rules are edited (console/segment.html).
(function () {
  const form = document.getElementById("segment-form");
  const out = document.getElementById("segment-count");
  if (!form || !out) return;
  let timer = null;
  async function refresh() {
    const body = new FormData(form);
    try {
      const response = await fetch(out.dataset.url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: {"X-CSRFToken": body.get("csrf_token")},
      });
      const data = await response.json();
      out.textContent = response.ok ? `${data.count} confirmed reader(s) match`
                                    : `Not valid yet: ${data.error}`;
    } catch (error) {
      out.textContent = "Count unavailable.";
    }
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  refresh();
})();
