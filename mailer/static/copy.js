// "Copy the code" on the signup-box page: the clipboard API where allowed,
// else select the text so the visitor can press Ctrl+C.
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("copy-snippet");
  if (!button) return;
  const status = document.getElementById("copy-status");
  button.addEventListener("click", async () => {
    const code = document.getElementById(button.dataset.target);
    try {
      await navigator.clipboard.writeText(code.textContent);
      status.textContent = "Copied.";
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
});
