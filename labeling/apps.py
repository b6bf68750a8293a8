from django.apps import AppConfig
from django.core.management import call_command
from django.db import connections, transaction
from django.db.models.signals import post_migrate, pre_migrate

from . import db_counters


def _create_cache_table(sender, using: str, verbosity: int = 1, **kwargs) -> None:
    """`migrate` also creates the database cache's table (settings.CACHES without CACHE_URL), so
    that every place that migrates (make run, docker-compose, the tests) has it."""
    call_command("createcachetable", database=using, verbosity=verbosity)


def _counted(using: str):
    """The connection when it is SQLite and the counters' table exists (None otherwise)."""
    connection = connections[using]
    if connection.vendor == "sqlite" and db_counters.COUNTS_TABLE in connection.introspection.table_names():
        return connection
    return None


def _counter_triggers_off(sender, using: str, **kwargs) -> None:
    """SQLite: no counter trigger during `migrate` (a table rebuild's RENAME fails while another
    table's trigger names the table; labeling/db_counters.py)."""
    if connection := _counted(using):
        db_counters.uninstall(connection)


def _counter_triggers_on(sender, using: str, **kwargs) -> None:
    """SQLite: the triggers back after `migrate`, and every counts row recomputed, in one
    transaction (writes made while they were off are counted)."""
    if connection := _counted(using):
        with transaction.atomic(using=using):
            db_counters.install(connection, backfill=True)


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="labeling-createcachetable")
        pre_migrate.connect(_counter_triggers_off, sender=self, dispatch_uid="labeling-counter-triggers-off")
        post_migrate.connect(_counter_triggers_on, sender=self, dispatch_uid="labeling-counter-triggers-on")
