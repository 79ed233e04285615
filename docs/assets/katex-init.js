// Render the TeX that pymdownx.arithmatex (generic mode) leaves in .arithmatex elements, on
// every page load including Material's instant navigation.
document$.subscribe(({ body }) => {
  for (const el of body.querySelectorAll(".arithmatex")) {
    const tex = el.textContent.trim();
    const display = tex.startsWith("\\[");
    katex.render(tex.slice(2, -2), el, { displayMode: display, throwOnError: true });
  }
});
