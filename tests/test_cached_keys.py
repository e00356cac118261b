"""cached(key=...): names namespaced by their function, hashed names that no plain name
equals, the template checked when decorating, keys any backend takes."""

import os

import pytest

from django_cachekit import cached, invalidate_pattern
from django_cachekit.core import keys
from django_cachekit.core import protocol as core
from tests import httpviews
from tests.conftest import needs_redis
from tests.test_api import counting

pytestmark = pytest.mark.django_db(transaction=True)


def assert_breaker_closed():
    breaker = core.runtime().breaker
    assert breaker.failures == 0 and not breaker.is_open


def test_two_functions_with_one_key_template_have_their_own_entries():
    @cached(key="report:{year}")
    @counting
    def sales(year):
        return f"sales {year}"

    @cached(key="report:{year}")
    @counting
    def costs(year):
        return f"costs {year}"

    assert sales(2024) == "sales 2024"
    assert costs(2024) == "costs 2024"
    assert sales(2024) == "sales 2024" and costs(2024) == "costs 2024"
    assert len(sales.__wrapped__.calls) == len(costs.__wrapped__.calls) == 1
    assert sales.cache_key(2024) != costs.cache_key(2024)
    assert sales.cache_key(2024).endswith(":report:2024")  # still readable
    sales.invalidate(2024)
    sales(2024), costs(2024)
    assert len(sales.__wrapped__.calls) == 2 and len(costs.__wrapped__.calls) == 1


def test_a_name_equal_to_the_digest_of_a_hashed_name_is_another_entry():
    @cached(key="{text}")
    @counting
    def echo(text):
        return text

    hashed = "a b"  # a space: hashed
    assert echo(hashed) == hashed
    looks_like_it = keys.name_part(hashed)
    assert looks_like_it.startswith("#")
    assert echo(looks_like_it) == looks_like_it
    assert echo.cache_key(hashed) != echo.cache_key(looks_like_it)
    assert echo(hashed) == hashed and echo(looks_like_it) == looks_like_it
    assert len(echo.__wrapped__.calls) == 2


def test_names_kept_as_they_are_and_names_hashed():
    for plain in ("report:2024", "user/42@eu", "a=1,b=2", "x" * 128):
        assert keys.name_part(plain) == plain
    for odd in ("a b", "a\nb", "a\x01b", "x" * 129, "caf\u00e9", "#1", "sales:*", ""):
        assert keys.name_part(odd).startswith("#") and len(keys.name_part(odd)) == 33


@needs_redis
def test_invalidate_pattern_reaches_the_names_of_every_function():
    @cached(key="report:{year}")
    @counting
    def sales(year):
        return year

    @cached(key="report:{year}")
    @counting
    def costs(year):
        return year

    @cached(key="other:{year}")
    @counting
    def other(year):
        return year

    sales(1), costs(1), other(1)
    assert invalidate_pattern("report:*") == 2
    assert invalidate_pattern("report:1") == 2
    sales(1), costs(1), other(1)
    assert [len(f.__wrapped__.calls) for f in (sales, costs, other)] == [2, 2, 1]


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("report:{nosuch}", "'nosuch', which is not an argument of"),
        ("report:{year.real}:{nosuch[0]}", "'nosuch'"),
        ("report:{year:{width}}", "'width'"),
        ("report:{}", "positional field {}"),
        ("report:{0}", "positional field {0}"),
        ("report:{year", "not a valid format string"),
        ("report:{year!z}", "unknown conversion !z"),
    ],
)
def test_a_key_template_is_checked_against_the_signature_when_decorating(template, named):
    def report(year, region="eu"):
        return year

    with pytest.raises(ValueError, match="report") as caught:
        cached(key=template)(report)
    assert named in str(caught.value)
    assert template in str(caught.value)


def test_a_key_template_over_kwargs_and_defaults():
    @cached(key="r:{year}:{region}:{extra}")
    @counting
    def report(year, region="eu", **options):
        return (year, region, options)

    assert report(1, extra="x") == (1, "eu", {"extra": "x"})
    assert report(1, extra="x") == (1, "eu", {"extra": "x"})
    assert report.cache_key(1, extra="x").endswith(":r:1:eu:x")
    assert len(report.__wrapped__.calls) == 1
    with pytest.raises(TypeError, match="needs 'extra', which this call does not pass"):
        report(1)

    @cached(key="r:{year}:{args}")
    def positional(year, *args):
        return year

    assert positional(1, 2) == 1


@pytest.mark.parametrize("bad", ["a\nb", "a b", "a\x01b", "x" * 300, "caf\u00e9"])
def test_any_name_is_stored_and_hit_and_the_breaker_stays_closed(bad):
    @cached(key="r:{text}", tags=lambda text: [text])
    @counting
    def echo(text):
        return text

    @cached(key=lambda text: text)
    @counting
    def raw(text):
        return text

    for _ in range(10):
        assert echo(bad) == bad
        assert raw(bad) == bad
    assert len(echo.__wrapped__.calls) == len(raw.__wrapped__.calls) == 1
    assert_breaker_closed()
    echo.invalidate(bad)
    assert echo(bad) == bad
    assert len(echo.__wrapped__.calls) == 2
    assert not core.runtime().lost_invalidations


def test_a_value_the_cache_refuses_does_not_open_the_breaker():
    @cached(key="big:{n}")
    @counting
    def big(n):
        return os.urandom(3 * 1024 * 1024)  # over Memcached's item size, and incompressible

    for n in range(10):
        assert len(big(n)) == 3 * 1024 * 1024
    assert_breaker_closed()

    @cached(key="small")
    @counting
    def small():
        return 1

    small(), small()
    assert len(small.__wrapped__.calls) == 1


def test_a_cached_response_for_any_query_string_is_stored_and_hit(rf):
    before = httpviews.RENDERS["listing"]
    odd = {"q": "a b\n\x01" + "x" * 300}
    for _ in range(10):
        assert httpviews.listing(rf.get("/listing/", odd)).status_code == 200
    assert httpviews.RENDERS["listing"] == before + 1
    assert_breaker_closed()
