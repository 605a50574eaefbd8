"""URL map: the admin for now; the API and dashboard join later."""

from django.contrib import admin
from django.urls import path

admin.site.site_header = "Tern"
admin.site.site_title = "Tern"
admin.site.index_title = "Flows, executions and logs"

urlpatterns = [path("admin/", admin.site.urls)]
