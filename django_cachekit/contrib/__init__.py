"""Optional integrations: ``prometheus`` (prometheus-client) and ``debug_toolbar`` (django-debug-toolbar)."""
