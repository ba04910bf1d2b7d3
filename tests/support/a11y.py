"""A plain accessibility audit run in the page by Playwright (no external tool):
the checks a screen-reader or keyboard user trips over first."""

from __future__ import annotations

from typing import Any

_AUDIT_JS = """
() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const name = (el) => (el.getAttribute('aria-label') || el.getAttribute('title') ||
                        (el.getAttribute('aria-labelledby') &&
                         document.getElementById(el.getAttribute('aria-labelledby'))?.textContent) ||
                        el.textContent || el.value ||
                        // a linked image is named by its alt text
                        [...el.querySelectorAll('img[alt]')].map((i) => i.alt).join(' ') || '').trim();
  if (!document.documentElement.lang) problems.push('html has no lang');
  if (!document.title.trim()) problems.push('page has no title');
  const viewport = document.querySelector('meta[name=viewport]');
  if (!viewport || !/width=device-width/.test(viewport.content)) problems.push('no responsive viewport meta');
  const h1 = document.querySelectorAll('h1');
  if (h1.length !== 1) problems.push(`${h1.length} h1 elements`);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !visible(el)) continue;
    const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
                     el.getAttribute('aria-labelledby');
    if (!labelled) problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`);
  }
  for (const el of document.querySelectorAll('button, a[href], [role=button]')) {
    if (visible(el) && !name(el)) problems.push(`${el.tagName.toLowerCase()} without a name`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push(`img without alt: ${img.src}`);
  }
  const ids = {};
  for (const el of document.querySelectorAll('[id]')) ids[el.id] = (ids[el.id] || 0) + 1;
  for (const [id, n] of Object.entries(ids)) if (n > 1) problems.push(`id ${id} used ${n} times`);
  return problems;
}
"""


def audit(page: Any) -> list[str]:
    """Problems found on the page as it is now; [] when it passes."""
    problems: list[str] = page.evaluate(_AUDIT_JS)
    return problems
