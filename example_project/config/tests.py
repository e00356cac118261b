import io
import os
import sys
from contextlib import redirect_stdout
from unittest import mock

from django.apps import apps
from django.test import SimpleTestCase, override_settings

from config.apps import cache_line

REDIS = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://:secret@127.0.0.1:6379/0"}}
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


class StartUpTests(SimpleTestCase):
    def test_a_locmem_cache_is_named_with_what_it_means(self):
        with override_settings(CACHES=LOCMEM):
            line = cache_line()
        self.assertIn("django.core.cache.backends.locmem.LocMemCache", line)
        self.assertIn("management commands", line)
        self.assertIn("REDIS_URL", line)

    def test_a_redis_cache_is_named_without_its_password(self):
        with override_settings(CACHES=REDIS):
            line = cache_line()
        self.assertEqual(
            line, "django-cachekit: cache 'default' is django_redis.cache.RedisCache at redis://:***@127.0.0.1:6379/0."
        )

    def test_runserver_prints_the_line_once_in_the_serving_process(self):
        config = apps.get_app_config("example_config")
        for argv, run_main, printed in [
            (["manage.py", "runserver"], "true", True),
            (["manage.py", "runserver"], None, False),  # the autoreloader's parent
            (["manage.py", "runserver", "--noreload"], None, True),
            (["manage.py", "migrate"], "true", False),
        ]:
            env = {k: v for k, v in os.environ.items() if k != "RUN_MAIN"}
            if run_main:
                env["RUN_MAIN"] = run_main
            out = io.StringIO()
            with (
                mock.patch.object(sys, "argv", argv),
                mock.patch.dict(os.environ, env, clear=True),
                redirect_stdout(out),
            ):
                config.ready()
            self.assertEqual(out.getvalue() == cache_line() + "\n", printed, (argv, run_main))
            self.assertEqual(bool(out.getvalue()), printed, (argv, run_main))
