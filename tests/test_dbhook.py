"""Which tags a write statement invalidates, read from its SQL."""

import pytest

from django_cachekit.dbhook import read_tables, write_tags

A = "testapp_article"


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        (f'UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s', ["x", 5], [f"m:{A}", f"o:{A}:5"]),
        (f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" IN (%s, %s)', [1, 2, 3], [f"m:{A}", f"o:{A}:2", f"o:{A}:3"]),
        (f'DELETE FROM "{A}" WHERE "{A}"."id" IN (%s)', [9], [f"m:{A}", f"o:{A}:9"]),
        (f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" = ANY(%s)', [1, [4, 5]], [f"m:{A}", f"o:{A}:4", f"o:{A}:5"]),
        (
            f'UPDATE "{A}" SET "views" = ("{A}"."views" + %s) WHERE "{A}"."id" = %s RETURNING "{A}"."views"',
            [1, 7],
            [f"m:{A}", f"o:{A}:7"],
        ),
        # Not a primary key lookup: every object entry of the table goes.
        (f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."author_id" = %s', [1, 2], [f"m:{A}", f"r:{A}"]),
        (f'UPDATE "{A}" SET "views" = %s', [1], [f"m:{A}", f"r:{A}"]),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE "{A}"."id" IN (SELECT U0."id" FROM "{A}" U0 WHERE U0."id" = %s)',
            [1, 2],
            [f"m:{A}", f"r:{A}"],
        ),
        (
            f'UPDATE "{A}" SET "views" = %s WHERE ("{A}"."views" > %s AND "{A}"."id" = %s)',
            [1, 0, 2],
            [f"m:{A}", f"r:{A}"],
        ),
        # Raw SQL as people type it.
        (f"update {A} set title = %s where id = %s", ["x", 3], [f"m:{A}", f"o:{A}:3"]),
        (f"  delete from {A}", None, [f"m:{A}", f"r:{A}"]),
        (f'INSERT INTO "{A}" ("title") VALUES (%s) RETURNING "{A}"."id"', ["x"], [f"m:{A}"]),
        (
            f'INSERT INTO "{A}" ("id", "title") VALUES (%s, %s) ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title"',
            [1, "x"],
            [f"m:{A}", f"r:{A}"],
        ),
        (
            f'INSERT INTO "{A}_tags" ("article_id", "tag_id") VALUES (%s, %s) ON CONFLICT DO NOTHING',
            [1, 2],
            [f"m:{A}_tags"],
        ),
        (f'INSERT OR IGNORE INTO "{A}_tags" ("article_id", "tag_id") VALUES (%s, %s)', [1, 2], [f"m:{A}_tags"]),
        (f'INSERT OR REPLACE INTO "{A}" ("id") VALUES (%s)', [1], [f"m:{A}", f"r:{A}"]),
        (f'TRUNCATE "{A}", "testapp_comment"', None, [f"m:{A}", f"r:{A}", "m:testapp_comment", "r:testapp_comment"]),
        (
            f'WITH moved AS (UPDATE "{A}" SET "views" = 0 RETURNING "id") SELECT * FROM moved',
            None,
            [f"m:{A}", f"r:{A}"],
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
    assert write_tags(sql, [("a", 1), ("b", 2)], many=True) == [f"m:{A}", f"o:{A}:1", f"o:{A}:2"]


def test_pk_values_are_normalised_like_reads():
    # A string pk from a URL and an int from the ORM name the same row.
    assert write_tags(f'DELETE FROM "{A}" WHERE "{A}"."id" = %s', ["12"]) == [f"m:{A}", f"o:{A}:12"]


def test_multi_table_child_pk_column():
    sql = 'UPDATE "testapp_restaurant" SET "serves_pizza" = %s WHERE "testapp_restaurant"."place_ptr_id" = %s'
    assert write_tags(sql, [True, 4]) == ["m:testapp_restaurant", "o:testapp_restaurant:4"]


def test_read_tables():
    sql = (
        f'SELECT "{A}"."id" FROM "{A}" INNER JOIN "testapp_author" ON ("{A}"."author_id" = "testapp_author"."id") '
        'WHERE "testapp_author"."id" IN (SELECT U0."id" FROM "testapp_tag" U0)'
    )
    assert read_tables(sql) == {A, "testapp_author", "testapp_tag"}
