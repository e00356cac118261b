"""Which tags a write statement invalidates, read from its SQL."""

import pytest

from django_cachekit.invalidation.hook import read_tables, write_tags
from django_cachekit.invalidation.keyed import covering

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


# -- every statement that writes, as people and tools write it

W = [f"m:{A}", f"r:{A}", K]  # every entry of the article table
AU = ["m:testapp_author", "r:testapp_author"]
CO = ["m:testapp_comment", "r:testapp_comment", "k:testapp_comment"]
V = ["m:testapp_articletotals", "r:testapp_articletotals"]
L = ["m:testapp_legacy", "r:testapp_legacy"]
# a link table as a whole: its entries and the cache_version of every row on both sides
LINK = [f"m:{T}", f"r:{T}", f"k:{T}", f"r:{A}", "r:testapp_tag"]
G = ["g"]


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        # comments before and inside the statement
        (f'/* audit */ UPDATE "{A}" SET "title" = %s WHERE "{A}"."id" = %s', ["x", 5], [f"m:{A}", f"o:{A}:5", K]),
        (f"-- audit\nUPDATE {A} SET title = %s WHERE id = %s", ["x", 5], [f"m:{A}", f"o:{A}:5", K]),
        ("# MySQL comment\nDELETE FROM testapp_author", None, AU),
        (f"UPDATE /* a */ {A} -- b\n SET title = %s /* c */ WHERE id = %s", ["x", 5], [f"m:{A}", f"o:{A}:5", K]),
        (f"UPDATE {A} SET views = 1 WHERE id = %s -- why", [5], [f"m:{A}", f"o:{A}:5", K]),
        # PostgreSQL nests block comments, MySQL and SQLite do not: either reading retires the table
        (f"/* outer /* inner */ still a comment */ DELETE FROM {A} WHERE id = %s", [3], W),
        (f"/*!40000 ALTER TABLE {A} DISABLE KEYS */", None, W),
        # a keyword in a comment or a string is no statement
        (f"/* UPDATE {A} */ SELECT 1", None, []),
        (f"SELECT 'DELETE FROM {A}'", None, []),
        (f"UPDATE {A} SET title = 'it''s; DELETE FROM testapp_author' WHERE id = %s", [2], [f"m:{A}", f"o:{A}:2", K]),
        (f"UPDATE {A} SET title = E'it\\'s; DROP TABLE testapp_author' WHERE id = %s", [2], [f"m:{A}", f"o:{A}:2", K]),
        (f"UPDATE {A} SET title = $q$a; TRUNCATE testapp_author$q$ WHERE id = %s", [2], [f"m:{A}", f"o:{A}:2", K]),
        # case and schemas
        ("Update TestApp_Article Set views = 1", None, W),
        (f"UPDATE public.{A} SET views = 1 WHERE {A}.id = %s", [4], [f"m:{A}", f"o:{A}:4", K]),
        (f'update "public"."{A}" set views = 1 where "{A}"."ID" = %s', [4], [f"m:{A}", f"o:{A}:4", K]),
        (f"DELETE FROM main.{A.upper()} WHERE ID = %s", [4], [f"m:{A}", f"o:{A}:4", K]),
        # INSERT and upserts of every dialect
        (f"INSERT {A} (title) VALUES (%s)", ["x"], [f"m:{A}", K]),
        (f"INSERT IGNORE INTO {A} (title) VALUES (%s)", ["x"], [f"m:{A}", K]),
        (f"REPLACE INTO {A} (id, title) VALUES (%s, %s)", [1, "x"], [f"m:{A}", f"r:{A}", K]),
        (
            f"INSERT INTO {A} (id, title) VALUES (%s, %s) ON DUPLICATE KEY UPDATE title = VALUES(title)",
            [1, "x"],
            [f"m:{A}", f"r:{A}", K],
        ),
        (f"/* x */ INSERT OR REPLACE INTO {A} (id) VALUES (%s)", [1], [f"m:{A}", f"r:{A}", K]),
        # UPDATE and DELETE with other tables
        (f"UPDATE {A} SET views = b.id FROM testapp_author b WHERE {A}.author_id = b.id", None, W),
        (f"UPDATE {A} a JOIN testapp_author b ON a.author_id = b.id SET a.views = 1, b.name = 'x'", None, W + AU),
        (f"UPDATE {A}, testapp_author SET {A}.views = 1", None, W + AU),
        (f"DELETE FROM {A} USING testapp_author b WHERE {A}.author_id = b.id", None, W),
        (f"DELETE a FROM {A} a JOIN testapp_author b ON a.author_id = b.id", None, W + AU),
        (f"DELETE FROM {A}, testapp_author USING {A} JOIN testapp_author", None, W + AU),
        # whole tables
        (f"TRUNCATE TABLE ONLY {A}, testapp_comment RESTART IDENTITY CASCADE", None, W + CO),
        (f"MERGE INTO {A} a USING (VALUES (1)) v(id) ON a.id = v.id WHEN MATCHED THEN UPDATE SET views = 0", None, W),
        ("REFRESH MATERIALIZED VIEW testapp_articletotals", None, V),
        ("refresh materialized view concurrently public.TESTAPP_ARTICLETOTALS", None, V),
        (f"COPY {A} (title) FROM STDIN", None, W),
        (f"COPY {A} TO STDOUT", None, []),
        (f"COPY (SELECT * FROM {A}) TO STDOUT", None, []),
        (f"LOAD DATA LOCAL INFILE '/tmp/a.csv' REPLACE INTO TABLE {A} FIELDS TERMINATED BY ','", None, W),
        (
            f"WITH gone AS (DELETE FROM testapp_comment RETURNING article_id) "
            f"UPDATE {A} SET views = 0 WHERE id IN (SELECT article_id FROM gone)",
            None,
            CO + W,
        ),
        (f"WITH x AS (SELECT id FROM {A}) SELECT * FROM x", None, []),
        # DDL that changes what a table holds
        (f"ALTER TABLE {A} ADD COLUMN score integer DEFAULT 0", None, W),
        ("ALTER TABLE IF EXISTS testapp_author RENAME TO testapp_writer", None, AU),
        ("DROP TABLE IF EXISTS testapp_legacy, testapp_author CASCADE", None, L + AU),
        (f"CREATE TABLE testapp_legacy AS SELECT id, title AS name FROM {A}", None, L),
        ("CREATE OR REPLACE VIEW testapp_articletotals AS SELECT 1 AS author_id, 2 AS total", None, V),
        (f"SELECT id, title AS name INTO TEMP testapp_legacy FROM {A}", None, L),
        ("DROP SCHEMA public CASCADE", None, G),
        (f"CREATE INDEX ix ON {A} (views)", None, []),
        # statistics and plans write no row; EXPLAIN ANALYZE runs the statement
        (f"VACUUM {A}", None, []),
        (f"VACUUM FULL ANALYZE {A}", None, []),
        (f"ANALYZE {A}", None, []),
        (f"EXPLAIN UPDATE {A} SET views = 1", None, []),
        (f"EXPLAIN ANALYZE UPDATE {A} SET views = 1", None, W),
        (f"EXPLAIN (ANALYZE, BUFFERS) DELETE FROM {A}", None, W),
        (f"EXPLAIN (ANALYZE false) DELETE FROM {A}", None, []),
        (f"ANALYZE UPDATE {A} SET views = 1", None, W),
        (f"SELECT * FROM {A} FOR UPDATE", None, []),
        # code the statement does not hold: the tables its text writes, else everything
        (f"DO $$ BEGIN UPDATE {A} SET views = views + 1; DELETE FROM testapp_author; END $$", None, W + AU),
        ("DO LANGUAGE plpgsql 'BEGIN TRUNCATE testapp_author; END'", None, AU),
        (f"DO $$ BEGIN EXECUTE 'UPDATE ' || '{A} SET views = 0'; END $$", None, G),
        ("DO $$ import os $$ LANGUAGE plpython3u", None, G),
        ("CALL archive_articles(1)", None, G),
        ("EXECUTE bump_views(1)", None, G),
        (f"UPDATE {A} SET views = 0; DELETE FROM testapp_author", None, W + AU),
        (f"BEGIN; UPDATE {A} SET views = 1 WHERE id = 2; COMMIT;", None, W),
        # a link table written as a whole: the rows on both sides change their cache_version
        (f"TRUNCATE {T}", None, LINK),
        (f"DELETE FROM {T} USING {A} WHERE {T}.article_id = {A}.id", None, [f"m:{T}", f"r:{T}", f"k:{T}"]),
        (f"DELETE {T} FROM {T} JOIN {A} ON {T}.article_id = {A}.id", None, LINK + [f"m:{A}", K]),
        # session statements write nothing
        ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", None, []),
        ("PREPARE p AS UPDATE testapp_article SET views = 1", None, []),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", None, []),
    ],
)
def test_write_tags_of_every_statement(sql, params, expected):
    assert write_tags(sql, params) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", ("transaction", "repeatable read")),
        ("set transaction read write, isolation level serializable", ("transaction", "serializable")),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            ("session", "repeatable read"),
        ),
        ("SET default_transaction_isolation = 'serializable'", ("session", "serializable")),
        ("SET SESSION default_transaction_isolation TO 'repeatable read'", ("session", "repeatable read")),
        ("SET default_transaction_isolation TO DEFAULT", ("reset", "")),
        ("RESET ALL", ("reset", "")),
        ("DISCARD ALL", ("reset", "")),
        ("/* x */ BEGIN ISOLATION LEVEL REPEATABLE READ", ("transaction", "repeatable read")),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", ("transaction", "serializable")),
        # MySQL and MariaDB
        ("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", ("session", "repeatable read")),
        ("SET @@SESSION.transaction_isolation = 'REPEATABLE-READ'", ("session", "repeatable read")),
        ("SET tx_isolation = 'READ-COMMITTED'", ("session", "read committed")),
        ("SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", None),
        ("SET TRANSACTION READ ONLY", None),
        ("SET search_path TO public", None),
    ],
)
def test_isolation_set_in_sql(sql, expected):
    from django_cachekit.invalidation import statements

    assert statements.read(sql).isolation == expected


def test_transaction_statements():
    from django_cachekit.invalidation import statements

    assert statements.read("BEGIN").begins
    assert statements.read("start transaction").begins
    assert all(statements.read(sql).ends for sql in ("COMMIT", "end", "ROLLBACK", "ABORT", "COMMIT AND NO CHAIN"))
    assert not any(statements.read(sql).ends for sql in ("ROLLBACK TO SAVEPOINT s1", "COMMIT AND CHAIN"))


def test_a_commented_or_mixed_case_link_write_is_seen_by_the_link_reader():
    from django_cachekit.invalidation import links

    for sql in (
        f'/* raw */ INSERT INTO "{T}" ("article_id", "tag_id") VALUES (%s, %s)',
        f"insert into {T.upper()} (article_id, tag_id) values (%s, %s)",
        f"-- x\nDELETE FROM {T} WHERE article_id = %s",
    ):
        found = links.match(sql)
        assert found is not None, sql
        assert found[0].table == T
    tags = links.tags(
        None, links.match(f"/* raw */ INSERT INTO {T} (article_id, tag_id) VALUES (%s, %s)"), "", [4, 7], False, []
    )
    assert set(tags) == {f"t:{A}:4", "t:testapp_tag:7"}
