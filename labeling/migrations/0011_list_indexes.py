# Keyset pages of the jobs, exports and imports lists (issue 12): they read a range of
# (created_at, id) newest first (next) or oldest first (previous) with a LIMIT. An index on
# (project, created_at) alone made PostgreSQL sort each tie group, and a previous page read every
# newer row through a bitmap scan and sorted them; (project, created_at, id) serves both ways as
# a plain index range scan. It replaces the (project, created_at) one (a prefix of it).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0010_image_name_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="prelabeljob",
            index=models.Index(fields=["project", "-created_at", "-id"], name="job_project_recent_id_idx"),
        ),
        migrations.AddIndex(
            model_name="export",
            index=models.Index(fields=["project", "-created_at", "-id"], name="export_project_recent_id_idx"),
        ),
        migrations.AddIndex(
            model_name="importjob",
            index=models.Index(fields=["project", "-created_at", "-id"], name="import_project_recent_id_idx"),
        ),
        migrations.RemoveIndex(model_name="prelabeljob", name="job_project_recent_idx"),
        migrations.RemoveIndex(model_name="export", name="export_project_recent_idx"),
        migrations.RemoveIndex(model_name="importjob", name="import_project_recent_idx"),
    ]
