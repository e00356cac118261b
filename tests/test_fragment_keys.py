"""Fragment keys: an unambiguous encoding of the objects as given, the blocks that
actually render inside a fragment, and names Memcached can take."""

import pytest
from django.template import Context, Engine, Template

from django_cachekit import fragments
from django_cachekit.core import protocol as core
from django_cachekit.metrics import counters as metrics
from tests.factories import ArticleFactory

pytestmark = pytest.mark.django_db(transaction=True)

LOAD = "{% load cachekit %}"


def counts(name):
    return metrics.snapshot().get(f"fragment:{name}", dict.fromkeys(metrics.EVENTS, 0))


def engine(templates):
    return Engine(
        loaders=[("django.template.loaders.locmem.Loader", templates)],
        libraries={"cachekit": "django_cachekit.templatetags.cachekit"},
    )


def test_objects_split_differently_are_different_fragments():
    first, second = ArticleFactory(), ArticleFactory()
    flat = fragments.fragment("a", [first, second])
    assert fragments.fragment("a", [first, [second]]).key != flat.key
    assert fragments.fragment("a", [[first], second]).key != flat.key
    assert fragments.fragment("a", [[first, second]]).key != flat.key
    assert fragments.fragment("a", [first, second]).key == flat.key
    assert fragments.fragment("a", [first, None]).key != fragments.fragment("a", [first, []]).key


def test_a_tag_whose_lists_split_differently_renders_each_split():
    first, second = ArticleFactory(), ArticleFactory()
    template = Template(LOAD + '{% cachefragment "a" p q %}{{ p|length }}+{{ q|length }}{% endcachefragment %}')
    assert template.render(Context({"p": [first, second], "q": []})) == "2+0"
    assert template.render(Context({"p": [first], "q": [second]})) == "1+1"
    assert template.render(Context({"p": [first, second], "q": []})) == "2+0"
    assert counts("a")["hit"] == 1


BASE = (
    LOAD + '{% cachefragment "page" article %}<h1>{{ article.title }}</h1>'
    "{% block body %}default{% endblock %}{% endcachefragment %}"
)


def test_children_overriding_a_block_inside_the_parents_fragment_get_their_own_output():
    article = ArticleFactory(title="T")
    templates = {
        "base.html": BASE,
        "one.html": '{% extends "base.html" %}{% block body %}one{% endblock %}',
        "two.html": '{% extends "base.html" %}{% block body %}two{% endblock %}',
        "super.html": '{% extends "base.html" %}{% block body %}{{ block.super }}+super{% endblock %}',
        "grandchild.html": '{% extends "one.html" %}',
    }
    eng = engine(templates)

    def show(name):
        return eng.get_template(name).render(Context({"article": article}))

    assert show("one.html") == "<h1>T</h1>one"
    assert show("two.html") == "<h1>T</h1>two"
    assert show("base.html") == "<h1>T</h1>default"
    assert show("super.html") == "<h1>T</h1>default+super"
    assert show("grandchild.html") == "<h1>T</h1>one"  # renders what one.html renders: the same entry
    assert counts("page")["hit"] == 1
    assert show("two.html") == show("one.html").replace("one", "two")
    assert counts("page")["hit"] == 3
    templates["two.html"] = '{% extends "base.html" %}{% block body %}two, edited{% endblock %}'
    assert show("two.html") == "<h1>T</h1>two, edited"  # the block's text is part of the key


def test_nested_blocks_of_an_override_and_a_super_inside_a_childs_fragment():
    article = ArticleFactory(title="T")
    templates = {
        "base.html": BASE,
        "outer.html": '{% extends "base.html" %}{% block body %}[{% block inner %}i{% endblock %}]{% endblock %}',
        "inner1.html": '{% extends "outer.html" %}{% block inner %}1{% endblock %}',
        "inner2.html": '{% extends "outer.html" %}{% block inner %}2{% endblock %}',
        "parent.html": "{% block body %}parent{% endblock %}",
        "child.html": (
            '{% extends "parent.html" %}' + LOAD + "{% block body %}"
            '{% cachefragment "inner" article %}{{ block.super }}!{% endcachefragment %}{% endblock %}'
        ),
    }
    eng = engine(templates)

    def show(name):
        return eng.get_template(name).render(Context({"article": article}))

    assert show("inner1.html") == "<h1>T</h1>[1]"
    assert show("inner2.html") == "<h1>T</h1>[2]"
    assert show("outer.html") == "<h1>T</h1>[i]"
    assert show("child.html") == "parent!"
    templates["parent.html"] = "{% block body %}parent, edited{% endblock %}"
    assert show("child.html") == "parent, edited!"  # what block.super shows is part of the key


def test_a_template_rendered_itself_or_as_a_parent_without_overrides_is_one_fragment():
    article = ArticleFactory(title="T")
    eng = engine({"base.html": BASE, "plain.html": '{% extends "base.html" %}'})
    assert eng.get_template("base.html").render(Context({"article": article})) == "<h1>T</h1>default"
    assert eng.get_template("base.html").render(Context({"article": article})) == "<h1>T</h1>default"
    assert eng.get_template("plain.html").render(Context({"article": article})) == "<h1>T</h1>default"
    assert counts("page")["hit"] == 2


@pytest.mark.parametrize("name", ["a\nb", "a b", "a\x01b", "x" * 300, "caf\u00e9"])
def test_any_fragment_name_is_stored_and_hit_and_the_breaker_stays_closed(name):
    article = ArticleFactory()
    rendered = []
    for _ in range(10):
        frag = fragments.fragment(name, [article], vary=name, tags=[name])
        fragments.render(frag, lambda: rendered.append(1) or "out")
    assert len(rendered) == 1
    breaker = core.runtime().breaker
    assert breaker.failures == 0 and not breaker.is_open
    assert not core.runtime().lost_invalidations
