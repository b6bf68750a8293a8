// Drag-and-drop and upload progress for the project page's upload form (htmx does the posting).
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const zone = form.querySelector("[data-dropzone]");
  const input = form.querySelector('input[type="file"]');
  const progress = document.getElementById("upload-progress");

  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });

  form.addEventListener("htmx:xhr:progress", (event) => {
    if (!event.detail.lengthComputable) return;
    progress.hidden = false;
    progress.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });
  form.addEventListener("htmx:afterRequest", () => {
    progress.hidden = true;
    progress.value = 0;
    form.reset();
  });
})();
