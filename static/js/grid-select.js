// The project page's image grid: "Select all on this page" checks (or clears) every tile's box.
// Delegated from the document, so it keeps working after htmx swaps the grid in again.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.matches("[data-select-all]")) return;
  const form = box.form;
  if (!form || !form.id) return;
  for (const pick of document.querySelectorAll(`input.tile-pick[form="${form.id}"]`)) {
    pick.checked = box.checked;
  }
});
