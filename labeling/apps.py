from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def _create_cache_table(sender, using: str, verbosity: int = 1, **kwargs) -> None:
    """`migrate` also creates the database cache's table (settings.CACHES without CACHE_URL), so
    that every place that migrates (make run, docker-compose, the tests) has it."""
    call_command("createcachetable", database=using, verbosity=verbosity)


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="labeling-createcachetable")
