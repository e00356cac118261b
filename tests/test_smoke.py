import pytest
from tests.testapp.models import Article, Author, Comment, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def test_smoke(django_assert_num_queries):
    a = Author.objects.create(name="A")
    art = Article.objects.create(title="t1", author=a)
    with django_assert_num_queries(0):
        got = Article.objects.cache().get(pk=art.pk)
    assert got.title == "t1"
    Article.objects.filter(pk=art.pk).update(title="t2")
    with django_assert_num_queries(1):
        assert Article.objects.cache().get(pk=art.pk).title == "t2"
    with django_assert_num_queries(0):
        assert Article.objects.cache().get(pk=art.pk).title == "t2"
    with django_assert_num_queries(1):
        assert [x.title for x in Article.objects.cache().filter(author=a)] == ["t2"]
    with django_assert_num_queries(0):
        assert [x.title for x in Article.objects.cache().filter(author=a)] == ["t2"]
    with django_assert_num_queries(1):
        assert Article.objects.cache().count() == 1
    with django_assert_num_queries(0):
        assert Article.objects.cache().count() == 1
    art2 = Article.objects.create(title="x", author=a)
    with django_assert_num_queries(1):
        assert Article.objects.cache().count() == 2
    with django_assert_num_queries(0):
        assert Article.objects.cache().get(pk=art.pk).title == "t2"
    art2.title = "y"
    art2.save()
    with django_assert_num_queries(0):
        assert Article.objects.cache().get(pk=art2.pk).title == "y"
