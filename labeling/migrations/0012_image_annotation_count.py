# Each image's own counts (issue 14: the grid sorts by number of annotations, and its tiles read
# the counts instead of two correlated COUNTs per tile): Image.annotation_count and proposal_count,
# kept exact by the annotations' database triggers (labeling/db_counters.py) like the project's
# counts row; indexes for the grid's sorts (count, and name within a status); the triggers put
# back with the image counts, and every image's counts backfilled.

from django.db import migrations, models

from labeling import db_counters

# The grid sorted by name within a status, or searched by a name prefix within a status: (project,
# status, name in code point order, id). As for image_name_prefix_idx (0010), the collation is
# PostgreSQL's "C", which the selector names the same way; SQLite's default order is that already.
STATUS_NAME_INDEX = "image_status_name_idx"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    table = schema_editor.quote_name("labeling_image")
    name = '("original_name" COLLATE "C")' if vendor == "postgresql" else '"original_name"'
    statements = [
        f'CREATE INDEX IF NOT EXISTS {STATUS_NAME_INDEX} ON {table} ("project_id", "status", {name}, "id")'
    ]
    if vendor == "postgresql":  # SQLite: its triggers (and the backfill) come back after migrate
        statements += db_counters.install_sql(vendor) + db_counters.image_counts_backfill_sql()
    for statement in statements:
        schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    statements = [f"DROP INDEX IF EXISTS {STATUS_NAME_INDEX}"]
    if schema_editor.connection.vendor == "postgresql":
        statements += db_counters.install_sql("postgresql", image_counts=False)
    for statement in statements:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0011_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="annotation_count",
            field=models.IntegerField(
                db_default=0, default=0, editable=False, help_text="Its annotations (every state and source)."
            ),
        ),
        migrations.AddField(
            model_name="image",
            name="proposal_count",
            field=models.IntegerField(
                db_default=0, default=0, editable=False, help_text="Its annotations still proposed."
            ),
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(fields=["project", "annotation_count", "id"], name="image_project_count_idx"),
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(
                fields=["project", "status", "annotation_count", "id"], name="image_status_count_idx"
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
