from django.urls import path

from . import dashboard_views

urlpatterns = [
    path("dashboard/", dashboard_views.dashboard_index, name="dashboard"),
    path("dashboard/projects/<int:project_id>/", dashboard_views.dashboard_project, name="dashboard-project"),
    path(
        "dashboard/projects/<int:project_id>/threshold/",
        dashboard_views.dashboard_apply_threshold,
        name="dashboard-apply-threshold",
    ),
]
