"""URL map: the REST API (with and without Kestra's tenant segment), its docs, and the admin."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from flows_app.api import urls as api_urls

admin.site.site_header = "Tern"
admin.site.site_title = "Tern"
admin.site.index_title = "Flows, executions and logs"


def for_browser(view):
    return login_required(view, login_url="/admin/login/")


urlpatterns = [
    path("api/v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The pages are for a browser: one not logged in is sent to the admin's login first.
    path("api/v1/docs", for_browser(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/v1/redoc", for_browser(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
    path("api/v1/", include((api_urls.global_urlpatterns, "api"), namespace="api-global")),
    path("api/v1/main/", include(("flows_app.api.urls", "api"), namespace="api")),
    path("api/v1/", include(("flows_app.api.urls", "api"), namespace="api-untenanted")),
    path("", include((api_urls.health_urlpatterns, "api"), namespace="api-health")),
    path("admin/", admin.site.urls),
]
