from django.apps import AppConfig
from django.core.management import call_command
from django.db import connections
from django.db.models.signals import post_migrate

from . import db_counters


def _create_cache_table(sender, using: str, verbosity: int = 1, **kwargs) -> None:
    """`migrate` also creates the database cache's table (settings.CACHES without CACHE_URL), so
    that every place that migrates (make run, docker-compose, the tests) has it."""
    call_command("createcachetable", database=using, verbosity=verbosity)


def _counter_triggers(sender, using: str, **kwargs) -> None:
    """SQLite drops a table's triggers when a migration rebuilds the table: put back the project
    counters' triggers after every `migrate` (idempotent; PostgreSQL keeps them through ALTERs)."""
    connection = connections[using]
    if connection.vendor == "sqlite" and db_counters.COUNTS_TABLE in connection.introspection.table_names():
        db_counters.install(connection)


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="labeling-createcachetable")
        post_migrate.connect(_counter_triggers, sender=self, dispatch_uid="labeling-counter-triggers")
