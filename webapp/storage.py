"""Static files storage for production (LABELGPT_MANIFEST_STATIC=1)."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ManifestStaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files whose ES modules import each other by their hashed names:
    static/js is native modules (`import ... from "./canvas.js"`), and without this a page built
    with the hashed review.js would load the other modules under their unhashed names."""

    support_js_module_import_aggregation = True

    def url_converter(self, name, hashed_files, template=None):
        convert = super().url_converter(name, hashed_files, template)

        if template and ("import" in template or "export" in template) and not name.startswith("js/"):
            # Only our own modules (static/js) import by file: third-party files are left as
            # they are (django-htmx's extensions name "../htmx" in JSDoc comments, not a file).
            return lambda matchobj: matchobj[0]
        return convert
