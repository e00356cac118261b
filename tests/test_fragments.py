"""{% cachefragment %}: keys from object versions and template text, Russian dolls,
prefetching a loop in one round trip, compile-time errors, transactions, failures."""

import collections

import pytest
from django.core.cache import caches
from django.db import transaction
from django.template import Context, Engine, Template, TemplateSyntaxError

from django_cachekit import cache_disabled, fragments, invalidate_tags
from django_cachekit.core import protocol as core
from django_cachekit.metrics import counters as metrics
from django_cachekit.templatetags import cachekit as cachekit_tags
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory, CommentFactory
from tests.testapp.models import Article, Author, Comment, Plain

pytestmark = pytest.mark.django_db(transaction=True)

LOAD = "{% load cachekit %}"


def render(source, **context):
    return Template(LOAD + source).render(Context(context))


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def counts(name):
    return metrics.snapshot().get(f"fragment:{name}", dict.fromkeys(metrics.EVENTS, 0))


CARD = (
    '{% cachefragment "card" article %}'
    "{{ article.title }} by {{ article.author.name }}: {{ article.comments.count }} comments"
    "{% endcachefragment %}"
)


def test_first_render_queries_second_is_served_with_no_query(queries):
    article = ArticleFactory(title="Fragments")
    CommentFactory.create_batch(2, article=article)
    article = fresh(article)
    with queries(2):  # the author, the comment count
        first = render(CARD, article=article)
    assert first == f"Fragments by {article.author.name}: 2 comments"
    article = fresh(article)
    with queries(0):
        assert render(CARD, article=article) == first
    assert counts("card")["hit"] == 1


def test_a_save_of_the_object_renders_it_again(queries):
    article = ArticleFactory(title="Before")
    render(CARD, article=fresh(article))
    article.title = "After"
    article.save()
    loaded = fresh(article)
    with queries(2):
        assert render(CARD, article=loaded).startswith("After by")
    loaded = fresh(article)
    with queries(0):
        assert render(CARD, article=loaded).startswith("After by")


def test_a_touching_child_and_an_update_render_it_again(queries):
    article = ArticleFactory()
    render(CARD, article=fresh(article))
    CommentFactory(article=article)  # Comment.CacheMeta.touch = ("article",)
    assert render(CARD, article=fresh(article)).endswith(": 1 comments")
    Comment.objects.filter(article=article).delete()
    assert render(CARD, article=fresh(article)).endswith(": 0 comments")
    Article.objects.filter(pk=article.pk).update(title="Updated")
    loaded = fresh(article)
    with queries(2):
        assert render(CARD, article=loaded).startswith("Updated by")


def test_every_object_counts_and_none_is_an_object(queries):
    article = ArticleFactory(category=None)
    source = (
        '{% cachefragment "byline" article article.author article.category %}'
        "{{ article.author.name }}/{{ article.category.name|default:'-' }}{% endcachefragment %}"
    )
    article = fresh(article)
    assert render(source, article=article) == f"{article.author.name}/-"
    article = fresh(article)
    article.author  # noqa: B018  (loaded outside the assertion)
    with queries(0):
        assert render(source, article=article) == f"{article.author.name}/-"
    Author.objects.filter(pk=article.author_id).update(name="Renamed")
    article = fresh(article)
    assert render(source, article=article) == "Renamed/-"


def test_russian_dolls_a_child_renders_itself_and_its_parents_again(queries):
    first, second = ArticleFactory(title="First"), ArticleFactory(title="Second")
    a1, a2 = CommentFactory(article=first, text="a1"), CommentFactory(article=first, text="a2")
    CommentFactory(article=second, text="b1")
    source = (
        "{% for article in articles %}"
        '{% cachefragment "article" article %}[{{ article.title }}'
        "{% for comment in article.comments.all %}"
        '{% cachefragment "comment" comment %}({{ comment.text }}){% endcachefragment %}'
        "{% endfor %}]{% endcachefragment %}"
        "{% endfor %}"
    )

    def page():
        return render(source, articles=list(Article.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")))

    with queries(3):  # the articles, then each article's comments
        assert page() == "[First(a1)(a2)][Second(b1)]"
    with queries(1):  # the articles only: both outer fragments are hits
        assert page() == "[First(a1)(a2)][Second(b1)]"
    a1.text = "a1, edited"
    a1.save()
    metrics.reset()
    with queries(2):  # the articles, the first article's comments
        assert page() == "[First(a1, edited)(a2)][Second(b1)]"
    assert counts("article")["stale"] == 1 and counts("article")["hit"] == 1
    # The edited comment renders again; its sibling is a hit inside the new outer;
    # the other article's comments are not even looked up.
    assert counts("comment")["stale"] == 1 and counts("comment")["hit"] == 1
    assert counts("comment")["miss"] == 0
    a2.delete()
    assert page() == "[First(a1, edited)][Second(b1)]"


def test_an_edit_of_the_template_text_is_another_fragment():
    article = ArticleFactory()
    one = '{% cachefragment "same" article %}one{% endcachefragment %}'
    two = '{% cachefragment "same" article %}two{% endcachefragment %}'
    assert render(one, article=article) == "one"
    assert render(two, article=article) == "two"
    assert render(one, article=article) == "one"
    assert counts("same")["hit"] == 1


def test_the_key_is_the_same_for_every_compilation_of_a_template(queries):
    article = ArticleFactory()
    source = LOAD + '{% cachefragment "card" article %}{{ article.author.name }}{% endcachefragment %}'
    libraries = {"cachekit": "django_cachekit.templatetags.cachekit"}
    Engine(debug=True, libraries=libraries).from_string(source).render(Context({"article": fresh(article)}))
    compiled = Engine(debug=False, libraries=libraries).from_string(source)
    loaded = fresh(article)
    with queries(0):  # a non-debug engine tokenizes without positions: the same text, the same key
        compiled.render(Context({"article": loaded}))


def test_tags_invalidate_the_fragment():
    article = ArticleFactory()
    source = '{% cachefragment "promo" article tags="promo,front page" %}{{ n }}{% endcachefragment %}'
    assert render(source, article=article, n=1) == "1"
    assert render(source, article=article, n=2) == "1"  # served from the cache
    invalidate_tags("front page")
    assert render(source, article=article, n=3) == "3"
    invalidate_tags("elsewhere")
    assert render(source, article=article, n=4) == "3"
    invalidate_tags("promo")
    assert render(source, article=article, n=5) == "5"


def test_tags_from_a_variable_and_fragments_without_objects():
    source = '{% cachefragment "sidebar" tags=sidebar_tags timeout=None %}{{ n }}{% endcachefragment %}'
    assert render(source, sidebar_tags=["sidebar"], n=1) == "1"
    assert render(source, sidebar_tags=["sidebar"], n=2) == "1"
    invalidate_tags("sidebar")
    assert render(source, sidebar_tags="sidebar, other", n=3) == "3"


def test_vary_is_part_of_the_key():
    article = ArticleFactory()
    source = '{% cachefragment "greeting" article vary=lang %}{{ lang }}{{ n }}{% endcachefragment %}'
    assert render(source, article=article, lang="en", n=1) == "en1"
    assert render(source, article=article, lang="fr", n=1) == "fr1"
    assert render(source, article=article, lang="en", n=2) == "en1"


def test_a_write_while_rendering_leaves_a_miss_not_stale_output():
    article = ArticleFactory(title="Old")

    class Writer:
        def write(self):
            Article.objects.filter(pk=article.pk).update(title="New")
            return ""

    source = '{% cachefragment "racy" article %}{{ writer.write }}{{ article.title }}{% endcachefragment %}'
    assert render(source, article=fresh(article), writer=Writer()) == "Old"
    # Stored stamped with the versions read before rendering, which the update bumped.
    assert render(source, article=fresh(article), writer=None) == "New"


def test_inside_a_transaction_that_wrote_the_object_nothing_is_read_or_stored(queries):
    article = ArticleFactory(title="Committed")
    assert render(CARD, article=fresh(article)).startswith("Committed")

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="Uncommitted")
        assert render(CARD, article=fresh(article)).startswith("Uncommitted")
        assert render(CARD, article=fresh(article)).startswith("Uncommitted")
        raise Rollback
    loaded = fresh(article)
    with queries(0):
        assert render(CARD, article=loaded).startswith("Committed")


def test_cache_disabled_renders_every_time(queries):
    article = fresh(ArticleFactory())
    article.author  # noqa: B018
    source = '{% cachefragment "count" article %}{{ article.comments.count }}{% endcachefragment %}'
    with cache_disabled():
        with queries(1):
            render(source, article=article)
        with queries(1):
            render(source, article=article)
    with queries(1):  # nothing was stored inside the block
        render(source, article=article)
    with queries(0):
        render(source, article=article)


def test_a_failing_cache_never_breaks_rendering(monkeypatch, queries):
    article = fresh(ArticleFactory(title="Up"))
    store = core.runtime().store

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(store, "fetch", broken)
    monkeypatch.setattr(store, "set", broken)
    with queries(2):
        assert render(CARD, article=article).startswith("Up by")
    article = fresh(article)
    with queries(2):
        assert render(CARD, article=article).startswith("Up by")
    source = '{% for c in comments %}{% cachefragment "item" c %}{{ c.text }}{% endcachefragment %}{% endfor %}'
    comments = CommentFactory.create_batch(2, article=article, text="x")
    assert render(source, comments=comments) == "xx"
    assert metrics.snapshot()["cache"]["error"] >= 3


# Round trips


class RoundTrips:
    """Counts calls of the store (one call, one round trip) and of what is below it:
    Redis commands, or the Django cache's methods."""

    def __init__(self, monkeypatch):
        self.store = collections.Counter()
        self.below = collections.Counter()
        self.depth = collections.Counter()
        store = core.runtime().store
        for name in ("fetch", "ensure", "set", "set_many", "bump", "delete_many"):
            monkeypatch.setattr(store, name, self._wrap(self.store, name, getattr(store, name)))
        if CACHE in REDIS_CACHES:
            client = store.client
            execute = client.execute_command

            def counted(*args, **options):
                self.below[str(args[0]).upper()] += 1
                return execute(*args, **options)

            monkeypatch.setattr(client, "execute_command", counted)
            # Reads and bumps go over the store's own connection, not through the client.
            command = store.command

            def own(*args):
                self.below[str(args[0]).upper()] += 1
                return command(*args)

            monkeypatch.setattr(store, "command", own)
        else:
            cache = caches["default"]
            for name in ("get", "get_many", "set", "set_many", "add", "incr"):
                monkeypatch.setattr(cache, name, self._wrap(self.below, name, getattr(cache, name)))
            # The store reads LocMem and Memcached on its own, without unpickling classes.
            monkeypatch.setattr(store, "read_many", self._wrap(self.below, "get_many", store.read_many))

    def _wrap(self, counter, name, func):
        def wrapper(*args, **kwargs):
            # LocMem's get_many calls its own get: count the outermost call only.
            if not self.depth[id(counter)]:
                counter[name] += 1
            self.depth[id(counter)] += 1
            try:
                return func(*args, **kwargs)
            finally:
                self.depth[id(counter)] -= 1

        return wrapper

    def reset(self):
        self.store.clear()
        self.below.clear()


@pytest.fixture
def round_trips(monkeypatch):
    return RoundTrips(monkeypatch)


ITEMS = '{% for c in comments %}{% cachefragment "item" c %}<{{ c.text }}>{% endcachefragment %}{% endfor %}'


def _read_once(round_trips):
    assert round_trips.store == {"fetch": 1}
    assert round_trips.below == ({"MGET": 1} if CACHE in REDIS_CACHES else {"get_many": 1})


def test_a_hit_is_one_round_trip_and_an_outer_hit_reads_nothing_inside(round_trips):
    article = fresh(ArticleFactory())
    CommentFactory.create_batch(3, article=article)
    source = (
        '{% cachefragment "outer" article %}{% for c in article.comments.all %}'
        '{% cachefragment "inner" c %}{{ c.text }}{% endcachefragment %}{% endfor %}{% endcachefragment %}'
    )
    expected = render(source, article=article)
    round_trips.reset()
    assert render(source, article=article) == expected
    _read_once(round_trips)


def test_a_loop_of_fragments_is_read_in_one_round_trip(round_trips, queries):
    article = ArticleFactory()
    comments = CommentFactory.create_batch(12, article=article)
    expected = "".join(f"<{c.text}>" for c in comments)
    round_trips.reset()
    assert render(ITEMS, comments=comments) == expected
    assert round_trips.store["fetch"] == 1  # cold: one read, then the stores
    round_trips.reset()
    with queries(0):
        assert render(ITEMS, comments=comments) == expected
    _read_once(round_trips)
    assert counts("item")["hit"] == 12


def test_a_queryset_the_loop_evaluated_is_prefetched_without_a_second_query(round_trips, queries):
    article = ArticleFactory()
    CommentFactory.create_batch(5, article=article)
    source = ITEMS.replace("comments %}", "comments reversed %}")
    render(source, comments=article.comments.order_by("pk"))
    round_trips.reset()
    with queries(1):  # the loop's own query
        out = render(source, comments=article.comments.order_by("pk"))
    _read_once(round_trips)
    assert out == "".join(f"<{c.text}>" for c in article.comments.order_by("-pk"))


def test_unpacked_loop_variables_are_prefetched(round_trips):
    comments = CommentFactory.create_batch(4)
    source = (
        "{% for n, c in pairs %}"
        '{% cachefragment "numbered" c vary=n %}{{ n }}={{ c.text }};{% endcachefragment %}'
        "{% endfor %}"
    )
    pairs = list(enumerate(comments))
    expected = "".join(f"{n}={c.text};" for n, c in pairs)
    assert render(source, pairs=pairs) == expected
    round_trips.reset()
    assert render(source, pairs=pairs) == expected
    _read_once(round_trips)


def test_long_loops_are_read_in_windows(round_trips, monkeypatch):
    monkeypatch.setattr(cachekit_tags, "PREFETCH_WINDOW", 5)
    comments = CommentFactory.create_batch(12)
    render(ITEMS, comments=comments)
    round_trips.reset()
    render(ITEMS, comments=comments)
    assert round_trips.store == {"fetch": 3}


def test_a_sequence_the_loop_does_not_hold_is_not_read_again(round_trips, queries):
    article = fresh(ArticleFactory())
    CommentFactory.create_batch(3, article=article)
    source = ITEMS.replace("in comments", "in article.comments.all")
    render(source, article=article)
    round_trips.reset()
    with queries(1):  # the loop's query, never a second one to prefetch
        render(source, article=article)
    assert round_trips.store == {"fetch": 3}


def test_nested_loops_prefetch_each_inner_loop(round_trips):
    first, second = ArticleFactory(), ArticleFactory()
    groups = [CommentFactory.create_batch(3, article=first), CommentFactory.create_batch(2, article=second)]
    source = (
        "{% for group in groups %}|{% for c in group %}"
        '{% cachefragment "item" c %}{{ c.text }}{% endcachefragment %}'
        "{% endfor %}{% endfor %}"
    )
    expected = "".join("|" + "".join(c.text for c in group) for group in groups)
    assert render(source, groups=groups) == expected
    round_trips.reset()
    assert render(source, groups=groups) == expected
    assert round_trips.store == {"fetch": 2}


# Errors


@pytest.mark.parametrize(
    ("tag", "named"),
    [
        ("{% cachefragment %}", "needs a fragment name"),
        ("{% cachefragment article %}", "'article'"),
        ("{% cachefragment timeout=5 %}", "'timeout=5'"),
        ('{% cachefragment "" %}', "non-empty"),
        ('{% cachefragment "x" "title" %}', "'\"title\"'"),
        ('{% cachefragment "x" 42 %}', "'42'"),
        ('{% cachefragment "x" article timeout=-1 %}', "timeout=-1"),
        ('{% cachefragment "x" article timeout=0 %}', "timeout=0"),
        ('{% cachefragment "x" article timeout=1.5 %}', "timeout=1.5"),
        ('{% cachefragment "x" article timeout="x" %}', 'timeout="x"'),
        ('{% cachefragment "x" article tags="" %}', 'tags=""'),
        ('{% cachefragment "x" article tags=5 %}', "tags=5"),
        ('{% cachefragment "x" article colour="red" %}', "'colour'"),
        ('{% cachefragment "x" article timeout=1 timeout=2 %}', "timeout= is given twice"),
        ('{% cachefragment "x" tags="a" article %}', "'article'"),
    ],
)
def test_bad_arguments_fail_when_the_template_is_compiled(tag, named):
    with pytest.raises(TemplateSyntaxError) as caught:
        Template(LOAD + tag + "{% endcachefragment %}")
    assert named in str(caught.value)


def test_an_unclosed_fragment_fails_when_compiled():
    with pytest.raises(TemplateSyntaxError, match="endcachefragment"):
        Template(LOAD + '{% cachefragment "x" %}')


@pytest.mark.parametrize(
    ("args", "context", "named"),
    [
        ("article.title", {}, "article.title must be a saved model instance"),
        ("missing", {}, "missing must be a saved model instance"),
        ("unsaved", {"unsaved": Plain(label="new")}, "unsaved is an unsaved Plain"),
        ("items", {"items": ["a"]}, "items[0] must be a model instance"),
        ("article timeout=t", {"t": -5}, "timeout=t is -5"),
        ("article tags=t", {"t": 5}, "tags=t must give"),
        ("article tags=t", {"t": [""]}, "tags=t gives"),
        ("article vary=v", {"v": object()}, "vary must be"),
    ],
)
def test_bad_values_fail_when_rendered_and_name_the_argument(args, context, named):
    article = ArticleFactory(title="A title")
    template = Template(LOAD + '{% cachefragment "x" ' + args + " %}body{% endcachefragment %}")
    with pytest.raises(TemplateSyntaxError) as caught:
        template.render(Context({"article": article, **context}))
    assert named in str(caught.value)
    assert "'x'" in str(caught.value)


def test_the_plain_functions():
    article = ArticleFactory()
    frag = fragments.fragment("py", [article], tags=["py"])
    assert frag.tags[: len(fragments.object_tags(article))] == fragments.object_tags(article)
    assert fragments.render(frag, lambda: "one") == "one"
    assert fragments.render(frag, lambda: "two") == "one"
    article.save()
    frag = fragments.fragment("py", [fresh(article)], tags=["py"])
    assert fragments.render(frag, lambda: "three") == "three"
    with pytest.raises(ValueError, match="-1"):
        fragments.render(frag, lambda: "", timeout=-1)
    with pytest.raises(TypeError, match="object 1 must be a saved model instance"):
        fragments.fragment("py", ["not a model"])
