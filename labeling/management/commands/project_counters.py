"""`manage.py project_counters [--project ID ...] [--fix]`: check the project counters against real
counts; exit status 1 when one drifted (and --fix was not given)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.services.counters import UnknownProjects, project_counts_recompute


class Command(BaseCommand):
    help = "Recompute the project counters with real counts, report each drifted field, fix with --fix."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, nargs="+", action="extend", dest="projects", metavar="ID")
        parser.add_argument("--fix", action="store_true", help="Write the real counts where they drifted.")

    def handle(self, *args, projects: list[int] | None, fix: bool, **opts):
        try:
            drifts = project_counts_recompute(project_ids=projects, fix=fix)
        except UnknownProjects as exc:
            raise CommandError(str(exc)) from exc
        for d in drifts:
            stored = "missing" if d.stored is None else d.stored
            self.stdout.write(f"project {d.project_id}: {d.field} stored {stored}, actual {d.actual}")
        drifted = len({d.project_id for d in drifts})
        if not drifts:
            self.stdout.write("The project counters are exact.")
        elif fix:
            self.stdout.write(f"Fixed {len(drifts)} counter(s) in {drifted} project(s).")
        else:
            raise CommandError(
                f"{len(drifts)} counter(s) drifted in {drifted} project(s); run with --fix to repair.",
                returncode=1,
            )
