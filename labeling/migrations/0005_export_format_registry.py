"""Export.format's choices become the format registry's (labeling.formats.registry.export_choices,
a callable read when needed): adding a format needs no migration any more. The column is
unchanged (varchar(16)); only the migration state's fixed list of choices goes."""

from django.db import migrations, models

import labeling.formats.registry


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0004_jobs_leases_stages"),
    ]

    operations = [
        migrations.AlterField(
            model_name="export",
            name="format",
            field=models.CharField(choices=labeling.formats.registry.export_choices, max_length=16),
        ),
    ]
