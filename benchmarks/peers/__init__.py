"""Peer comparison: django-cachekit against no cache, django-cacheops and django-cachalot (see run.py)."""
