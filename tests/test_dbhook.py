"""Which tags a write statement invalidates, read from its SQL."""

import pytest

from django_cachekit.dbhook import covering, read_tables, write_tags

A = "testapp_article"
# The article table's keyed tag: it has integer foreign keys (author, category, plain).
K = f"k:{A}"


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        (f'UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s', ["x", 5], [f"m:{A}", f"o:{A}:5", K]),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" IN (%s, %s)',
            [1, 2, 3],
            [f"m:{A}", f"o:{A}:2", f"o:{A}:3", K],
        ),
        (f'DELETE FROM "{A}" WHERE "{A}"."id" IN (%s)', [9], [f"m:{A}", f"o:{A}:9", K]),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" = ANY(%s)',
            [1, [4, 5]],
            [f"m:{A}", f"o:{A}:4", f"o:{A}:5", K],
        ),
        (
            f'UPDATE "{A}" SET "views" = ("{A}"."views" + %s) WHERE "{A}"."id" = %s RETURNING "{A}"."views"',
            [1, 7],
            [f"m:{A}", f"o:{A}:7", K],
        ),
        # Not a primary key lookup: every object entry of the table goes.
        (f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."author_id" = %s', [1, 2], [f"m:{A}", f"r:{A}", K]),
        (f'UPDATE "{A}" SET "views" = %s', [1], [f"m:{A}", f"r:{A}", K]),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" IN (SELECT U0."id" FROM "{A}" U0 WHERE U0."id" = %s)',
            [1, 2],
            [f"m:{A}", f"r:{A}", K],
        ),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE ("{A}"."views" > %s AND "{A}"."id" = %s)',
            [1, 0, 2],
            [f"m:{A}", f"r:{A}", K],
        ),
        # Raw SQL as people type it.
        (f"update {A} set title = %s where id = %s", ["x", 3], [f"m:{A}", f"o:{A}:3", K]),
        (f"  delete from {A}", None, [f"m:{A}", f"r:{A}", K]),
        (f'INSERT INTO "{A}" ("title") VALUES (%s) RETURNING "{A}"."id"', ["x"], [f"m:{A}", K]),
        (
            f'INSERT INTO "{A}" ("id", "title") VALUES (%s, %s) ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title"',
            [1, "x"],
            [f"m:{A}", f"r:{A}", K],
        ),
        (
            f'INSERT INTO "{A}_tags" ("article_id", "tag_id") VALUES (%s, %s) ON CONFLICT DO NOTHING',
            [1, 2],
            [f"m:{A}_tags", f"f:{A}_tags:article_id=1", f"f:{A}_tags:tag_id=2"],
        ),
        (
            f'INSERT OR IGNORE INTO "{A}_tags" ("article_id", "tag_id") VALUES (%s, %s)',
            [1, 2],
            [f"m:{A}_tags", f"f:{A}_tags:article_id=1", f"f:{A}_tags:tag_id=2"],
        ),
        (f'INSERT OR REPLACE INTO "{A}" ("id") VALUES (%s)', [1], [f"m:{A}", f"r:{A}", K]),
        (
            f'TRUNCATE "{A}", "testapp_comment"',
            None,
            [f"m:{A}", f"r:{A}", K, "m:testapp_comment", "r:testapp_comment", "k:testapp_comment"],
        ),
        (
            f'WITH moved AS (UPDATE "{A}" SET "views" = 0 RETURNING "id") SELECT * FROM moved',
            None,
            [f"m:{A}", f"r:{A}", K],
        ),
        # Reads and statements on tables no model owns invalidate nothing.
        (f'SELECT "{A}"."id" FROM "{A}"', None, []),
        ('UPDATE "not_a_model_table" SET "x" = 1', None, []),
        ("SAVEPOINT s1", None, []),
    ],
)
def test_write_tags(sql, params, expected):
    assert write_tags(sql, params) == expected


def test_executemany_collects_every_row():
    sql = f'UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s'
    assert write_tags(sql, [("a", 1), ("b", 2)], many=True) == [f"m:{A}", f"o:{A}:1", f"o:{A}:2", K]


def test_pk_values_are_normalised_like_reads():
    # A string pk from a URL and an int from the ORM name the same row.
    assert write_tags(f'DELETE FROM "{A}" WHERE "{A}"."id" = %s', ["12"]) == [f"m:{A}", f"o:{A}:12", K]


def test_multi_table_child_pk_column():
    sql = 'UPDATE "testapp_restaurant" SET "serves_pizza" = %s WHERE "testapp_restaurant"."place_ptr_id" = %s'
    assert write_tags(sql, [True, 4]) == ["m:testapp_restaurant", "o:testapp_restaurant:4"]


def test_read_tables():
    sql = (
        f'SELECT "{A}"."id" FROM "{A}" INNER JOIN "testapp_author" ON ("{A}"."author_id" = "testapp_author"."id") '
        'WHERE "testapp_author"."id" IN (SELECT U0."id" FROM "testapp_tag" U0)'
    )
    assert read_tables(sql) == {A, "testapp_author", "testapp_tag"}


T = f"{A}_tags"


def test_an_insert_names_the_foreign_key_values_of_its_rows():
    sql = f'INSERT INTO "{T}" ("article_id", "tag_id") VALUES (%s, %s), (%s, %s) RETURNING "{T}"."id"'
    assert write_tags(sql, [1, 2, 1, "3"]) == [
        f"m:{T}",
        f"f:{T}:article_id=1",
        f"f:{T}:tag_id=2",
        f"f:{T}:tag_id=3",
    ]
    # executemany: one row per parameter set
    one = f'INSERT INTO "{T}" ("article_id", "tag_id") VALUES (%s, %s)'
    assert write_tags(one, [(4, 5), (6, None)], many=True) == [
        f"m:{T}",
        f"f:{T}:article_id=4",
        f"f:{T}:tag_id=5",
        f"f:{T}:article_id=6",
        f"f:{T}:tag_id=None",
    ]


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        # a value the tags cannot name
        (f'INSERT INTO "{T}" ("article_id", "tag_id") VALUES (%s, %s)', ["one", 2]),
        # a foreign key left to the database default
        (f'INSERT INTO "{T}" ("article_id") VALUES (%s)', [1]),
        # not every value is a placeholder
        (f'INSERT INTO "{T}" ("article_id", "tag_id") VALUES (%s, (SELECT MAX("id") FROM "testapp_tag"))', [1]),
        # PostgreSQL's bulk insert from arrays
        (
            f'INSERT INTO "{T}" ("article_id", "tag_id") SELECT * FROM UNNEST((%s)::integer[], (%s)::integer[])',
            [[1], [2]],
        ),
    ],
)
def test_an_insert_whose_values_are_unknown_bumps_the_keyed_tag(sql, params):
    assert write_tags(sql, params) == [f"m:{T}", f"k:{T}"]


def test_a_covered_save_leaves_the_keyed_tag_to_the_save():
    sql = f'UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s'
    with covering((A, 5)):
        # another row, or several, or a delete are not covered
        assert write_tags(sql, ["x", 6]) == [f"m:{A}", f"o:{A}:6", K]
        assert write_tags(f'DELETE FROM "{A}" WHERE "{A}"."id" = %s', [5])[-1] == K
        assert write_tags(sql, ["x", 5]) == [f"m:{A}", f"o:{A}:5"]
        # only one UPDATE of the row is the save's own
        assert write_tags(sql, ["x", 5]) == [f"m:{A}", f"o:{A}:5", K]
    assert write_tags(sql, ["x", 5]) == [f"m:{A}", f"o:{A}:5", K]


def test_tables_without_integer_foreign_keys_have_no_keyed_tag():
    assert write_tags('UPDATE "testapp_author" SET "name" = %s', ["x"]) == ["m:testapp_author", "r:testapp_author"]


def test_a_repeated_statement_reads_its_own_parameters():
    # The statement's text is analysed once; the keys come from each call's parameters.
    sql = f'UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s'
    assert write_tags(sql, ["a", 1]) == [f"m:{A}", f"o:{A}:1", K]
    assert write_tags(sql, ["b", 2]) == [f"m:{A}", f"o:{A}:2", K]
    assert write_tags(sql, None) == [f"m:{A}", f"r:{A}", K]
