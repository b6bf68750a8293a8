"""Jump by name on the review page: an index for a prefix of an image's original name within its
project (labeling.selectors.navigation.images_by_name), so that the lookup is one range read that
stops after its LIMIT, not a scan of the project's images.

The names are compared in code point order (a prefix is then one contiguous range, whatever the
database's collation): on PostgreSQL the index is on `original_name COLLATE "C"`, which the
selector's query names the same way; SQLite's default collation (BINARY) is that order already.
Not declared on the model: an expression with a collation that only PostgreSQL knows by that name.
"""

from django.db import migrations

INDEX = "image_name_prefix_idx"


def create_index(apps, schema_editor):
    table = schema_editor.quote_name("labeling_image")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {INDEX} ON {table} ("project_id", ("original_name" COLLATE "C"), "id")'
        )
    else:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {INDEX} ON {table} ("project_id", "original_name", "id")'
        )


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("labeling", "0009_dashboard_snapshot")]

    operations = [migrations.RunPython(create_index, drop_index)]
