// The archived edition is framed from our own origin: size the frame to the
// email so the page scrolls once, not twice.
document.addEventListener("DOMContentLoaded", () => {
  for (const frame of document.querySelectorAll("iframe.edition")) {
    const fit = () => {
      try {
        const doc = frame.contentDocument;
        if (doc && doc.documentElement) frame.style.height = doc.documentElement.scrollHeight + 20 + "px";
      } catch (err) { /* not readable: keep the default height */ }
    };
    frame.addEventListener("load", fit);
    window.addEventListener("resize", fit);
  }
});
