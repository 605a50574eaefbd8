"""Tern's REST API: Kestra's paths and JSON shapes on Django REST Framework (see docs/api.md)."""
