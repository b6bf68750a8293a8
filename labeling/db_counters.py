"""The database triggers that keep `labeling_projectcounts` exact (see docs/architecture.md, "Data").

Every write that changes a project's figures — a service, `bulk_create`, `queryset.update()`, a
cascading delete, the admin, an import, a pre-label batch, a hand-written SQL statement — fires a
trigger that adds its deltas to the project's counts row in the same transaction:

- PostgreSQL: statement-level AFTER INSERT / UPDATE / DELETE triggers with transition tables
  (REFERENCING NEW TABLE / OLD TABLE). Each statement's rows are aggregated per project and
  applied in one UPDATE (a 10,000-row bulk insert is one counter update). An UPDATE counts only
  the rows whose counted columns changed, and a project whose deltas are all zero is not touched:
  an edit that moves a box but not a state locks no counts row.
- SQLite (the embedded default): row-level triggers (SQLite has no transition tables; the whole
  database is locked by a writer anyway).

The annotations' triggers also keep each image's own counts (Image.annotation_count and
proposal_count, migration 0012): per-image deltas of the statement, written to the images' rows
before the project's counts row (the lock order of every write: an image's row first).
`image_counts=False` gives the triggers without them, for a schema before 0012.

An annotation's project is its image's project. Deleting an image also takes out the annotations
that still point at it (Django deletes them first, so normally none: but with deferred foreign keys
an image may go first, and the annotation's own trigger then finds no image to count it against).
A project's counts row is made by a trigger on project insert (so `Project.objects.create` has
one too) and goes with the project (a cascade); a trigger that fires after it has gone updates
no row, without error.

The SQL lives here, not in the migration alone, because of SQLite: a migration that alters a
column there rebuilds the table (a copy, a DROP, a RENAME), and the RENAME fails while another
table's trigger names the dropped one. So on SQLite the triggers are dropped before every `migrate`
and put back after it, with every counts row recomputed in the same transaction (labeling.apps:
pre_migrate / post_migrate; the embedded database is small). PostgreSQL alters tables in place and
keeps its triggers: there the migration installs them once. No import of Django models: the
migration uses this module.
"""

# Every statement here is built from this module's constants (table, column and trigger names):
# no value from outside ever reaches the SQL.
# ruff: noqa: S608

from __future__ import annotations

COUNTS_TABLE = "labeling_projectcounts"
IMAGE_TABLE = "labeling_image"
# Each image's own counts (migration 0012): its annotations (every state) and its open proposals,
# kept by the annotations' triggers like the project's counts row.
IMAGE_COUNT_COLUMNS = ("annotation_count", "proposal_count")

# column → condition on a row, with {status} / {state} / {source} / {edited} for the row's values.
IMAGE_COUNTERS = {
    "images_new": "{status} = 'new'",
    "images_prelabeled": "{status} = 'prelabeled'",
    "images_done": "{status} = 'done'",
    "images_skipped": "{status} = 'skipped'",
}
ANNOTATION_COUNTERS = {
    "annotations_proposed": "{state} = 'proposed'",
    "annotations_accepted": "{state} = 'accepted'",
    "annotations_rejected": "{state} = 'rejected'",
    "model_proposed": "{source} = 'model' AND {state} = 'proposed'",
    "model_accepted": "{source} = 'model' AND {state} = 'accepted'",
    "model_rejected": "{source} = 'model' AND {state} = 'rejected'",
    "model_edited": "{source} = 'model' AND {edited}",
}
CLASS_COUNTERS = {"classes": "1 = 1"}
COUNTERS = {**IMAGE_COUNTERS, **ANNOTATION_COUNTERS, **CLASS_COUNTERS}

PREFIX = "labeling_counts"


def _cond(template: str, alias: str, *, vendor: str) -> str:
    edited = f"({alias}.original_box IS NOT NULL)" if vendor == "sqlite" else f"{alias}.edited"
    return template.format(
        status=f"{alias}.status", state=f"{alias}.state", source=f"{alias}.source", edited=edited
    )


# PostgreSQL ------------------------------------------------------------------------------------


def _pg_apply(counters: dict[str, str], rows: str) -> str:
    """One UPDATE adding the signed, per-project sums of `rows` (project_id, sign, the counted
    values) to the counts rows; projects whose deltas are all zero are left alone (not locked)."""
    sums = ",\n      ".join(
        f"SUM(CASE WHEN {_cond(cond, 'r', vendor='postgresql')} THEN r.sign ELSE 0 END) AS {col}"
        for col, cond in counters.items()
    )
    sets = ", ".join(f"{col} = c.{col} + d.{col}" for col in counters)
    nonzero = " OR ".join(f"d.{col} <> 0" for col in counters)
    return f"""
    UPDATE {COUNTS_TABLE} AS c SET {sets}
    FROM (
      SELECT r.project_id,
      {sums}
      FROM ({rows}) AS r
      GROUP BY r.project_id
    ) AS d
    WHERE c.project_id = d.project_id AND ({nonzero});"""


def _pg_delta(columns: str, op: str, compared: str) -> str:
    """The statement's rows as (columns..., sign): inserted +1, deleted -1; for an UPDATE only the
    rows whose `compared` values changed, their old values -1 and their new ones +1."""
    new, old = columns.format(a="n"), columns.format(a="o")
    if op == "INSERT":
        return f"SELECT {new}, 1 AS sign FROM new_rows AS n"
    if op == "DELETE":
        return f"SELECT {old}, -1 AS sign FROM old_rows AS o"
    changed = f"ROW({compared.format(a='o')}) IS DISTINCT FROM ROW({compared.format(a='n')})"
    return (
        f"SELECT {old}, -1 AS sign FROM old_rows AS o LEFT JOIN new_rows AS n ON n.id = o.id "
        f"WHERE n.id IS NULL OR {changed} "
        f"UNION ALL "
        f"SELECT {new}, 1 AS sign FROM new_rows AS n LEFT JOIN old_rows AS o ON o.id = n.id "
        f"WHERE o.id IS NULL OR {changed}"
    )


ANNOTATION_VALUES = "{a}.state AS state, {a}.source AS source, ({a}.original_box IS NOT NULL) AS edited"


def _pg_image_body(op: str) -> str:
    delta = _pg_delta(
        "{a}.id AS id, {a}.project_id AS project_id, {a}.status AS status", op, "{a}.project_id, {a}.status"
    )
    body = _pg_apply(IMAGE_COUNTERS, f"SELECT project_id, sign, status FROM ({delta}) AS s")
    if op == "INSERT":
        return body
    # Annotations still pointing at a deleted image, or at an image moved to another project.
    if op == "DELETE":
        moved = "SELECT o.id, o.project_id, -1 AS sign FROM old_rows AS o"
    else:
        moved = (
            "SELECT o.id, o.project_id, -1 AS sign FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id "
            "WHERE n.project_id <> o.project_id "
            "UNION ALL "
            "SELECT n.id, n.project_id, 1 AS sign FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id "
            "WHERE n.project_id <> o.project_id"
        )
    rows = (
        f"SELECT m.project_id, m.sign, {ANNOTATION_VALUES.format(a='a')} "
        f"FROM ({moved}) AS m JOIN labeling_annotation AS a ON a.image_id = m.id"
    )
    return body + _pg_apply(ANNOTATION_COUNTERS, rows)


def _pg_image_counts(delta: str) -> str:
    """One UPDATE adding the statement's signed per-image sums to each image's own counts
    (annotation_count, proposal_count); images whose deltas are zero are left alone. It runs
    before the project's counts row is touched: an image's row first, then its project's (the
    lock order of every write)."""
    return f"""
    UPDATE {IMAGE_TABLE} AS i SET
      annotation_count = i.annotation_count + d.annotations, proposal_count = i.proposal_count + d.proposals
    FROM (
      SELECT s.image_id, SUM(s.sign) AS annotations,
      SUM(CASE WHEN s.state = 'proposed' THEN s.sign ELSE 0 END) AS proposals
      FROM ({delta}) AS s GROUP BY s.image_id
    ) AS d
    WHERE i.id = d.image_id AND (d.annotations <> 0 OR d.proposals <> 0);"""


def _pg_annotation_body(op: str, *, image_counts: bool = True) -> str:
    delta = _pg_delta(
        "{a}.id AS id, {a}.image_id AS image_id, " + ANNOTATION_VALUES,
        op,
        "{a}.image_id, {a}.state, {a}.source, {a}.original_box IS NULL",
    )
    rows = (
        "SELECT i.project_id, s.sign, s.state, s.source, s.edited "
        f"FROM ({delta}) AS s JOIN labeling_image AS i ON i.id = s.image_id"
    )
    body = _pg_apply(ANNOTATION_COUNTERS, rows)
    return (_pg_image_counts(delta) + body) if image_counts else body


def _pg_class_body(op: str) -> str:
    delta = _pg_delta("{a}.id AS id, {a}.project_id AS project_id", op, "{a}.project_id")
    return _pg_apply(CLASS_COUNTERS, f"SELECT project_id, sign FROM ({delta}) AS s")


PG_PROJECT_BODY = f"""
    INSERT INTO {COUNTS_TABLE} (project_id) SELECT id FROM new_rows ON CONFLICT (project_id) DO NOTHING;"""

_PG_TABLES = {
    "labeling_image": ("image", _pg_image_body),
    "labeling_annotation": ("annotation", _pg_annotation_body),
    "labeling_labelclass": ("class", _pg_class_body),
}


def _pg_trigger(table: str, name: str, op: str, body: str) -> list[str]:
    function = f"{PREFIX}_{name}_{op.lower()}"
    referencing = {
        "INSERT": "REFERENCING NEW TABLE AS new_rows",
        "DELETE": "REFERENCING OLD TABLE AS old_rows",
        "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    }[op]
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN{body}\n  RETURN NULL;\nEND;\n$$;",
        f"CREATE OR REPLACE TRIGGER {function} AFTER {op} ON {table} {referencing} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}();",
    ]


def _pg_install(*, image_counts: bool = True) -> list[str]:
    statements = []
    for table, (name, body) in _PG_TABLES.items():
        for op in ("INSERT", "UPDATE", "DELETE"):
            text = body(op, image_counts=image_counts) if name == "annotation" else body(op)
            statements += _pg_trigger(table, name, op, text)
    statements += _pg_trigger("labeling_project", "project", "INSERT", PG_PROJECT_BODY)
    return statements


def _pg_uninstall() -> list[str]:
    statements = []
    for table, (name, _) in [*_PG_TABLES.items(), ("labeling_project", ("project", None))]:
        ops = ("INSERT",) if name == "project" else ("INSERT", "UPDATE", "DELETE")
        for op in ops:
            function = f"{PREFIX}_{name}_{op.lower()}"
            statements.append(f"DROP TRIGGER IF EXISTS {function} ON {table};")
            statements.append(f"DROP FUNCTION IF EXISTS {function}();")
    return statements


# SQLite ----------------------------------------------------------------------------------------


def _sqlite_add(counters: dict[str, str], alias: str, sign: str, project: str) -> str:
    sets = ", ".join(
        f"{col} = {col} {sign} ({_cond(cond, alias, vendor='sqlite')})" for col, cond in counters.items()
    )
    return f"UPDATE {COUNTS_TABLE} SET {sets} WHERE project_id = {project};"


def _sqlite_image_annotations(sign: str, image: str, project: str) -> str:
    """Add (sign +) or take out (-) the annotations of one image from a project's counts."""
    sets = ", ".join(
        f"{col} = {col} {sign} (SELECT COUNT(*) FROM labeling_annotation AS a WHERE a.image_id = {image} "
        f"AND {_cond(cond, 'a', vendor='sqlite')})"
        for col, cond in ANNOTATION_COUNTERS.items()
    )
    return f"UPDATE {COUNTS_TABLE} SET {sets} WHERE project_id = {project};"


def _sqlite_image_counts(alias: str, sign: str) -> str:
    """Add (sign +) or take out (-) one annotation from its image's own counts."""
    return (
        f"UPDATE {IMAGE_TABLE} SET annotation_count = annotation_count {sign} 1, "
        f"proposal_count = proposal_count {sign} ({alias}.state = 'proposed') WHERE id = {alias}.image_id;"
    )


def _sqlite_triggers(*, image_counts: bool = True) -> dict[str, str]:
    """name → the text after CREATE TRIGGER IF NOT EXISTS <name>."""

    def own(alias: str, sign: str) -> str:
        return _sqlite_image_counts(alias, sign) + " " if image_counts else ""

    ann_project = "(SELECT project_id FROM labeling_image WHERE id = {a}.image_id)"
    has_annotations = "EXISTS (SELECT 1 FROM labeling_annotation WHERE image_id = {i}.id)"
    ann_changed = (
        "OLD.image_id IS NOT NEW.image_id OR OLD.state IS NOT NEW.state OR OLD.source IS NOT NEW.source "
        "OR (OLD.original_box IS NULL) IS NOT (NEW.original_box IS NULL)"
    )
    return {
        f"{PREFIX}_project_insert": (
            f"AFTER INSERT ON labeling_project BEGIN "
            f"INSERT OR IGNORE INTO {COUNTS_TABLE} (project_id) VALUES (NEW.id); END"
        ),
        f"{PREFIX}_image_insert": (
            f"AFTER INSERT ON labeling_image BEGIN "
            f"{_sqlite_add(IMAGE_COUNTERS, 'NEW', '+', 'NEW.project_id')} END"
        ),
        f"{PREFIX}_image_delete": (
            f"AFTER DELETE ON labeling_image BEGIN "
            f"{_sqlite_add(IMAGE_COUNTERS, 'OLD', '-', 'OLD.project_id')} END"
        ),
        f"{PREFIX}_image_delete_annotations": (
            f"AFTER DELETE ON labeling_image WHEN {has_annotations.format(i='OLD')} BEGIN "
            f"{_sqlite_image_annotations('-', 'OLD.id', 'OLD.project_id')} END"
        ),
        f"{PREFIX}_image_update": (
            "AFTER UPDATE OF status, project_id ON labeling_image "
            "WHEN OLD.status IS NOT NEW.status OR OLD.project_id IS NOT NEW.project_id BEGIN "
            f"{_sqlite_add(IMAGE_COUNTERS, 'OLD', '-', 'OLD.project_id')} "
            f"{_sqlite_add(IMAGE_COUNTERS, 'NEW', '+', 'NEW.project_id')} END"
        ),
        f"{PREFIX}_image_move": (
            "AFTER UPDATE OF project_id ON labeling_image "
            f"WHEN OLD.project_id IS NOT NEW.project_id AND {has_annotations.format(i='NEW')} BEGIN "
            f"{_sqlite_image_annotations('-', 'NEW.id', 'OLD.project_id')} "
            f"{_sqlite_image_annotations('+', 'NEW.id', 'NEW.project_id')} END"
        ),
        f"{PREFIX}_annotation_insert": (
            "AFTER INSERT ON labeling_annotation BEGIN "
            f"{own('NEW', '+')}"
            f"{_sqlite_add(ANNOTATION_COUNTERS, 'NEW', '+', ann_project.format(a='NEW'))} END"
        ),
        f"{PREFIX}_annotation_delete": (
            "AFTER DELETE ON labeling_annotation BEGIN "
            f"{own('OLD', '-')}"
            f"{_sqlite_add(ANNOTATION_COUNTERS, 'OLD', '-', ann_project.format(a='OLD'))} END"
        ),
        f"{PREFIX}_annotation_update": (
            "AFTER UPDATE OF image_id, state, source, original_box ON labeling_annotation "
            f"WHEN {ann_changed} BEGIN "
            f"{own('OLD', '-')}{own('NEW', '+')}"
            f"{_sqlite_add(ANNOTATION_COUNTERS, 'OLD', '-', ann_project.format(a='OLD'))} "
            f"{_sqlite_add(ANNOTATION_COUNTERS, 'NEW', '+', ann_project.format(a='NEW'))} END"
        ),
        f"{PREFIX}_class_insert": (
            "AFTER INSERT ON labeling_labelclass BEGIN "
            f"{_sqlite_add(CLASS_COUNTERS, 'NEW', '+', 'NEW.project_id')} END"
        ),
        f"{PREFIX}_class_delete": (
            "AFTER DELETE ON labeling_labelclass BEGIN "
            f"{_sqlite_add(CLASS_COUNTERS, 'OLD', '-', 'OLD.project_id')} END"
        ),
        f"{PREFIX}_class_update": (
            "AFTER UPDATE OF project_id ON labeling_labelclass "
            "WHEN OLD.project_id IS NOT NEW.project_id BEGIN "
            f"{_sqlite_add(CLASS_COUNTERS, 'OLD', '-', 'OLD.project_id')} "
            f"{_sqlite_add(CLASS_COUNTERS, 'NEW', '+', 'NEW.project_id')} END"
        ),
    }


def _sqlite_install(*, image_counts: bool = True) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name} {text};"
        for name, text in _sqlite_triggers(image_counts=image_counts).items()
    ]


def _sqlite_uninstall() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name};" for name in _sqlite_triggers()]


# Both ------------------------------------------------------------------------------------------


def install_sql(vendor: str, *, image_counts: bool = True) -> list[str]:
    """The triggers; `image_counts=False`: without the images' own counts (a schema before
    migration 0012, which added those columns)."""
    if vendor == "postgresql":
        return _pg_install(image_counts=image_counts)
    return _sqlite_install(image_counts=image_counts)


def uninstall_sql(vendor: str) -> list[str]:
    return _pg_uninstall() if vendor == "postgresql" else _sqlite_uninstall()


def trigger_names(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [s.split()[4] for s in _pg_install() if s.startswith("CREATE OR REPLACE TRIGGER")]
    return list(_sqlite_triggers())


def backfill_sql() -> list[str]:
    """A counts row for every project, all of them set to the real counts (PostgreSQL and SQLite
    ≥ 3.33)."""

    def sums(counters: dict[str, str], alias: str) -> str:
        return ", ".join(
            f"SUM(CASE WHEN {_cond(cond, alias, vendor='sqlite')} THEN 1 ELSE 0 END) AS {col}"
            for col, cond in counters.items()
        )

    def assign(counters: dict[str, str]) -> str:
        return ", ".join(f"{col} = d.{col}" for col in counters)

    return [
        f"UPDATE {COUNTS_TABLE} SET {', '.join(f'{col} = 0' for col in COUNTERS)};",
        f"INSERT INTO {COUNTS_TABLE} (project_id) SELECT p.id FROM labeling_project AS p "
        f"WHERE NOT EXISTS (SELECT 1 FROM {COUNTS_TABLE} AS c WHERE c.project_id = p.id);",
        f"UPDATE {COUNTS_TABLE} SET {assign(IMAGE_COUNTERS)} FROM (SELECT r.project_id, "
        f"{sums(IMAGE_COUNTERS, 'r')} FROM labeling_image AS r GROUP BY r.project_id) AS d "
        f"WHERE {COUNTS_TABLE}.project_id = d.project_id;",
        f"UPDATE {COUNTS_TABLE} SET {assign(ANNOTATION_COUNTERS)} FROM (SELECT i.project_id, "
        f"{sums(ANNOTATION_COUNTERS, 'r')} FROM labeling_annotation AS r "
        f"JOIN labeling_image AS i ON i.id = r.image_id GROUP BY i.project_id) AS d "
        f"WHERE {COUNTS_TABLE}.project_id = d.project_id;",
        f"UPDATE {COUNTS_TABLE} SET {assign(CLASS_COUNTERS)} FROM (SELECT r.project_id, "
        f"{sums(CLASS_COUNTERS, 'r')} FROM labeling_labelclass AS r GROUP BY r.project_id) AS d "
        f"WHERE {COUNTS_TABLE}.project_id = d.project_id;",
    ]


def image_counts_backfill_sql() -> list[str]:
    """Every image's own counts set to the real counts (PostgreSQL and SQLite ≥ 3.33)."""
    return [
        f"UPDATE {IMAGE_TABLE} SET annotation_count = 0, proposal_count = 0 "
        "WHERE annotation_count <> 0 OR proposal_count <> 0;",
        f"UPDATE {IMAGE_TABLE} SET annotation_count = d.annotations, proposal_count = d.proposals "
        "FROM (SELECT a.image_id, COUNT(*) AS annotations, "
        "SUM(CASE WHEN a.state = 'proposed' THEN 1 ELSE 0 END) AS proposals "
        "FROM labeling_annotation AS a GROUP BY a.image_id) AS d "
        f"WHERE {IMAGE_TABLE}.id = d.image_id;",
    ]


def has_image_counts(connection) -> bool:
    """Whether the images' own count columns exist yet (migration 0012)."""
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, IMAGE_TABLE)}
    return set(IMAGE_COUNT_COLUMNS) <= columns


def install(connection, *, backfill: bool = False) -> None:
    """Create (or put back) the triggers on this connection's database, idempotent; with
    `backfill`, then recompute every counts row and every image's own counts (the caller holds
    the transaction). Before migration 0012 (no image count columns) without those."""
    image_counts = has_image_counts(connection)
    statements = install_sql(connection.vendor, image_counts=image_counts)
    if backfill:
        statements += backfill_sql() + (image_counts_backfill_sql() if image_counts else [])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def uninstall(connection) -> None:
    with connection.cursor() as cursor:
        for statement in uninstall_sql(connection.vendor):
            cursor.execute(statement)
