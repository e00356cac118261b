"""What an SQL statement writes, read from its text alone.

Comments (``--``, ``/* */`` nested as PostgreSQL nests them, MySQL's ``#``)
and string literals are blanked first, keeping every offset, so a keyword in a
comment or a string is never read as SQL and the regular expressions of the
callers still point into the original text. Then the statement is sorted by
its first word:

- ``insert``, ``upsert``, ``update``, ``delete``: one table, written row by row
  (``table``, and ``head``, the offset just past its name);
- ``truncate``, ``tables``: whole tables (``tables``; ``cascade`` when rows of
  other tables may go with them by ``ON DELETE``);
- ``call``, ``execute``: a procedure or a prepared statement (``target``),
  whose text the statement does not hold;
- ``select``: a read, which may still call a function that writes (``calls``
  gives the names called, read on demand);
- ``""``: anything that writes no row.

``unknown`` marks a statement that may write tables its text does not name
(dynamic SQL in a ``DO`` block). A string of several statements is read
statement by statement (``parts``). Nothing here knows the ORM: names are as
written, unquoted, without their schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from django_cachekit.memo import Memo

IDENT = _IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_QNAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_I = re.I | re.S

# Strings, quoted names, comments and statement ends: what the lexer must step over.
_TOKEN = re.compile(r"""(?<![\w$])[eE]'|'|"|`|(?<![\w$])\$(?:[A-Za-z_]\w*)?\$|--|/\*|\#|;""")
_SPECIAL = re.compile(r"""['$;#`]|--|/\*""")
_STRING_END = re.compile(r"(?:[^']|'')*'")
_E_STRING_END = re.compile(r"(?:[^'\\]|\\.|'')*'", re.S)
_IDENT_END = {'"': re.compile(r'(?:[^"]|"")*"'), "`": re.compile(r"[^`]*`")}
_COMMENT_MARK = re.compile(r"/\*|\*/")
_LINE_START = re.compile(r"(?:\A|\n)[ \t]*\Z")

_WORD = re.compile(r"\s*\(*\s*([A-Za-z]+)")
_CALL = re.compile(r'(?<![\w$])("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\s*\(')
_ANY_WRITE = re.compile(
    rf"\b(?P<kind>INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|REFRESH\s+MATERIALIZED\s+VIEW"
    rf"(?:\s+CONCURRENTLY)?|TRUNCATE(?:\s+TABLE)?|(?:ALTER|DROP)\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(?:ONLY\s+)?"
    rf"(?P<table>{_QNAME})",
    _I,
)
_DYNAMIC = re.compile(r"\bEXECUTE\b", re.I)
_DELETES = re.compile(r"\bDELETE\b|\bTRUNCATE\b", re.I)
_CASCADE = re.compile(r"\bCASCADE\b", re.I)
_UPSERT = re.compile(r"\bON\s+CONFLICT\b.*\bDO\s+UPDATE\b|\bON\s+DUPLICATE\s+KEY\b", _I)
_LIST_ITEM = re.compile(rf"\s*,\s*(?:ONLY\s+)?({_QNAME})(?:\s*\*)?")
_REF = re.compile(rf"(?:\bJOIN\b|[,(]|\A)\s*(?:ONLY\s+|LATERAL\s+)?({_QNAME})", re.I)

_INSERT = re.compile(
    rf"INSERT\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:OR\s+(?P<or>\w+)\s+)?(?:INTO\s+)?"
    rf"(?P<table>{_QNAME})",
    re.I,
)
_REPLACE = re.compile(rf"(?:REPLACE|UPSERT)\s+(?:(?:LOW_PRIORITY|DELAYED)\s+)?(?:INTO\s+)?(?P<table>{_QNAME})", re.I)
_UPDATE = re.compile(
    rf"UPDATE\s+(?:(?:LOW_PRIORITY|IGNORE)\s+)*(?:OR\s+\w+\s+)?(?:ONLY\s+)?(?P<table>{_QNAME})(?:\s*\*)?"
    rf"(?P<simple>(?:\s+(?:AS\s+)?(?!SET\b){_IDENT})?\s+SET\b)?",
    re.I,
)
_DELETE = re.compile(
    rf"DELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*(?:FROM\s+(?:ONLY\s+)?(?P<table>{_QNAME})(?:\s*\*)?"
    rf"(?P<simple>(?:\s+(?:AS\s+)?(?!(?:WHERE|USING|RETURNING|ORDER|LIMIT)\b){_IDENT})?"
    r"\s*(?:\Z|;|(?:WHERE|USING|RETURNING|ORDER|LIMIT)\b))?)?",
    re.I,
)
_TRUNCATE = re.compile(rf"TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?(?P<table>{_QNAME})(?:\s*\*)?", re.I)
_MERGE = re.compile(rf"MERGE\s+(?:INTO\s+)?(?:ONLY\s+)?(?P<table>{_QNAME})", re.I)
_REFRESH = re.compile(rf"REFRESH\s+MATERIALIZED\s+VIEW\s+(?:CONCURRENTLY\s+)?(?P<table>{_QNAME})", re.I)
_COPY = re.compile(rf"COPY\s+(?:BINARY\s+)?(?P<table>{_QNAME})\s*(?:\([^)]*\)\s*)?FROM\b", re.I)
_LOAD = re.compile(rf"LOAD\s+(?:DATA|XML)\b.*?\bINTO\s+TABLE\s+(?P<table>{_QNAME})", _I)
_INTO = re.compile(rf"\bINTO\s+(?:(?:TEMP|TEMPORARY|UNLOGGED|TABLE)\s+)*(?P<table>{_QNAME})", re.I)
_TABLE_DDL = re.compile(
    rf"(?:ALTER|DROP|CREATE(?:\s+OR\s+REPLACE)?)\s+(?:(?:TEMP|TEMPORARY|UNLOGGED|GLOBAL|LOCAL|RECURSIVE)\s+)*"
    rf"(?:TABLE|VIEW|MATERIALIZED\s+VIEW|FOREIGN\s+TABLE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?"
    rf"(?P<table>{_QNAME})",
    re.I,
)
_RENAME_TABLE = re.compile(r"RENAME\s+TABLE\b", re.I)
_RENAME_TO = re.compile(rf"\bRENAME\s+TO\s+(?P<table>{_QNAME})", re.I)
_ROUTINE_DDL = re.compile(
    r"(?:CREATE(?:\s+OR\s+REPLACE)?|ALTER|DROP)\s+(?:FUNCTION|PROCEDURE|ROUTINE|EXTENSION|SCHEMA)\b", re.I
)
_DROP_MANY = re.compile(r"DROP\s+(?:SCHEMA|DATABASE|OWNED|EXTENSION)\b", re.I)
_EXPLAIN = re.compile(r"EXPLAIN\s+(?:\((?P<options>[^)]*)\)|(?P<words>(?:(?:ANALY[SZ]E|VERBOSE)\s+)*))", re.I)
_ANALYZE_OFF = re.compile(r"ANALY[SZ]E\s+(?:FALSE|OFF|0)\b", re.I)
_ANALYZE_STATEMENT = re.compile(r"ANALY[SZ]E\s+(?=(?:INSERT|UPDATE|DELETE|REPLACE|SELECT)\b)", re.I)
_NAME_AFTER = re.compile(rf"\w+\s+(?P<name>{_IDENT})", re.I)
_DO_BODY = re.compile(r"\$(?P<tag>(?:[A-Za-z_]\w*)?)\$(?P<body>.*?)\$(?P=tag)\$|'(?P<quoted>(?:[^']|'')*)'", re.S)
_DO_LANGUAGE = re.compile(r"\bLANGUAGE\s+'?(\w+)", re.I)
_PREPARE = re.compile(rf"PREPARE\s+(?P<name>{_IDENT})\s*(?:\([^)]*\)\s*)?(?:AS\b|FROM\s+'(?P<text>(?:[^']|'')*)')", _I)
_DEALLOCATE = re.compile(rf"DEALLOCATE\s+(?:PREPARE\s+)?(?P<name>{_IDENT})", re.I)

# Isolation set in SQL; the level is read from the text with its strings.
_LEVEL = r"(?P<level>READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SERIALIZABLE|SNAPSHOT)"
_SET_TRANSACTION = re.compile(r"SET\s+(?P<scope>SESSION\s+|LOCAL\s+|GLOBAL\s+)?TRANSACTION\b(?P<rest>.*)", _I)
_CHARACTERISTICS = re.compile(r"SET\s+SESSION\s+CHARACTERISTICS\s+AS\s+TRANSACTION\b(?P<rest>.*)", _I)
_ISOLATION = re.compile(rf"\bISOLATION\s+LEVEL\s+{_LEVEL}", _I)
_SNAPSHOT = re.compile(r"\A\s*SNAPSHOT\b", re.I)
_SET_VARIABLE = re.compile(
    r"SET\s+(?P<scope>SESSION\s+|LOCAL\s+|GLOBAL\s+)?(?P<at>@@(?:(?P<atscope>session|local|global)\.)?)?"
    r"(?P<name>default_transaction_isolation|transaction_isolation|tx_isolation)\s*(?:=|\bTO\b)\s*"
    r"(?:'(?P<quoted>[^']*)'|\"(?P<dquoted>[^\"]*)\"|(?P<word>[\w-]+(?:\s+[\w-]+)?))",
    re.I,
)
_RESET = re.compile(r"(?:RESET\s+(?:ALL|default_transaction_isolation)|DISCARD\s+ALL)\b", re.I)
_BEGIN = re.compile(r"(?:BEGIN|START\s+TRANSACTION)\b(?P<rest>.*)", _I)
_END = re.compile(r"(?:COMMIT|END|ABORT|ROLLBACK)\b(?!\s+(?:TO\b|PREPARED\b|AND\s+CHAIN\b))", re.I)
STRICT_LEVELS = frozenset({"repeatable read", "serializable", "snapshot"})


class Isolation(NamedTuple):
    scope: str  # "session" (until changed), "transaction" (the current or next one), "reset"
    level: str  # read committed, repeatable read, ...; empty for a reset


class Statement(NamedTuple):
    kind: str = ""
    table: str = ""
    tables: tuple[str, ...] = ()
    cascade: bool = False
    unknown: bool = False
    head: int = 0
    target: str = ""
    calls: frozenset[str] = frozenset()
    parts: tuple[Statement, ...] = ()
    isolation: Isolation | None = None
    begins: bool = False
    ends: bool = False
    prepares: tuple[str, Statement] | None = None
    deallocates: str = ""
    routines_changed: bool = False
    text: str = ""  # the statement with comments and strings blanked (same length)

    @property
    def writes(self) -> bool:
        return bool(self.kind) and self.kind != "select"


class Block(NamedTuple):
    """What a body of procedural code (a ``DO`` block, a function) writes."""

    tables: tuple[str, ...]
    cascade: bool
    unknown: bool  # runs dynamic SQL
    calls: frozenset[str]


NOTHING = Statement()
_Reader = Callable[[str, str, int], Statement]
_statements: Memo[str, Statement] = Memo()
_calls: Memo[str, frozenset[str]] = Memo()
_blocks: Memo[str, Block] = Memo()


def first_char(sql: str) -> str:
    """The first character of a statement past any leading whitespace (a cheap
    test of what kind of statement it may be)."""
    first = sql[:1]
    return sql.lstrip()[:1] if first.isspace() else first


def unquote(name: str) -> str:
    """The last part of a (schema-)qualified name, without its quotes."""
    if "." in name:
        name = re.split(r"\s*\.\s*(?=[\"`\[A-Za-z_])", name)[-1]
    if name[:1] in ('"', "`", "["):
        return name[1:-1].replace('""', '"')
    return name


# An INSERT's column list and rows as Django writes them: every value a placeholder.
_ROW = r"\(\s*%s(?:\s*,\s*%s)*\s*\)"
_VALUES = rf"\s*\((?P<columns>[^()]*)\)\s*VALUES\s*{_ROW}(?:\s*,\s*{_ROW})*"
_INSERT_VALUES = re.compile(_VALUES, re.I)
_PLAIN_INSERT = re.compile(
    rf"\s*INSERT(?:\s+OR\s+IGNORE)?\s+INTO\s+{_QNAME}{_VALUES}\s*(?:ON\s+CONFLICT\s+DO\s+NOTHING\s*)?"
    r"(?:RETURNING\s+[^;%()]*)?;?\s*\Z",
    re.I,
)
_WHERE = re.compile(r"\sWHERE\s", re.I)


def inserted_columns(sql: str, start: int | None = None) -> list[str] | None:
    """The columns of an INSERT whose every value is a placeholder, or None.

    With ``start`` None, ``sql`` must be a whole plain INSERT (as Django writes
    it); else the column list and rows are read at ``start``, the end of the
    table's name (a ``Statement``'s ``head``), in ``sql`` (its blanked ``text``).
    """
    found = _PLAIN_INSERT.match(sql) if start is None else _INSERT_VALUES.match(sql, start)
    if found is None:
        return None
    return [unquote(column.strip()) for column in found.group("columns").split(",")]


def where_at(sql: str, start: int = 0) -> int | None:
    """Where the WHERE clause of a statement begins (at or after ``start``), or None."""
    found = _WHERE.search(sql, start)
    return None if found is None else found.start()


def read(sql: str) -> Statement:
    """What ``sql`` writes (memoised per statement text)."""
    return _statements.of(sql, _read)


def calls(statement: Statement) -> frozenset[str]:
    """The lower-cased names of the functions a statement calls (memoised per text)."""
    if statement.calls or not statement.text:
        return statement.calls
    return _calls.of(statement.text, _read_calls)


def read_block(body: str) -> Block:
    """What a body of procedural code writes, from the writing statements it holds anywhere."""
    return _blocks.of(body, _read_block)


# -- lexing


class _Lexed(NamedTuple):
    code: str  # comments blanked
    masked: str  # comments and the contents of strings blanked
    ends: tuple[int, ...]  # offsets of the top-level semicolons
    ambiguous: bool  # a block comment opened inside a block comment: nesting changes the reading


def _lex(sql: str, nested: bool = True) -> _Lexed:
    if not _SPECIAL.search(sql):
        return _Lexed(sql, sql, (), False)
    code: list[str] = []
    masked: list[str] = []
    ends: list[int] = []
    ambiguous = False
    pos = 0
    length = len(sql)
    while True:
        token = _TOKEN.search(sql, pos)
        if token is None:
            break
        start, mark = token.start(), token.group()
        code.append(sql[pos:start])
        masked.append(sql[pos:start])
        if mark == ";":
            ends.append(start)
            end = start + 1
            kept = hidden = mark
        elif mark in ('"', "`"):
            close = _IDENT_END[mark].match(sql, start + 1)
            end = close.end() if close else length
            kept = hidden = sql[start:end]
        elif mark in ("'", "e'", "E'"):
            close = (_STRING_END if mark == "'" else _E_STRING_END).match(sql, token.end())
            end = close.end() if close else length
            kept = sql[start:end]
            hidden = _blank_inside(kept, len(mark))
        elif mark.startswith("$"):
            close_at = sql.find(mark, token.end())
            end = close_at + len(mark) if close_at >= 0 else length
            kept = sql[start:end]
            hidden = _blank_inside(kept, len(mark))
        elif mark == "/*":
            end, inner = _comment_end(sql, start, nested)
            ambiguous = ambiguous or inner
            if sql.startswith("/*!", start):
                # MySQL runs the text of an executable comment.
                body = sql[start:end]
                kept = hidden = "   " + re.sub(r"\A\d*", lambda m: " " * len(m.group()), body[3:-2]) + "  "
            else:
                kept = hidden = _blank(sql[start:end])
        elif mark == "#" and not _LINE_START.search(sql, 0, start):
            end = start + 1
            kept = hidden = mark
        else:  # "--" or a "#" that starts a line: a comment to the end of the line
            newline = sql.find("\n", start)
            end = newline if newline >= 0 else length
            kept = hidden = " " * (end - start)
        code.append(kept)
        masked.append(hidden)
        pos = end
    code.append(sql[pos:])
    masked.append(sql[pos:])
    return _Lexed("".join(code), "".join(masked), tuple(ends), ambiguous)


def _blank(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def _blank_inside(text: str, opening: int) -> str:
    closing = opening if text[:1] == "$" else 1
    if len(text) < opening + closing:
        return text[:opening] + _blank(text[opening:])
    return text[:opening] + _blank(text[opening:-closing]) + text[-closing:]


def _comment_end(sql: str, start: int, nested: bool) -> tuple[int, bool]:
    """Where a block comment ends, and whether another one opens inside it."""
    depth = 0
    inner = False
    for mark in _COMMENT_MARK.finditer(sql, start):
        if mark.group() == "/*":
            depth += 1
            inner = inner or depth > 1
            if not nested:
                depth = 1
        else:
            depth -= 1
            if depth == 0:
                return mark.end(), inner
    return len(sql), inner


# -- reading


def _read(sql: str) -> Statement:
    lexed = _lex(sql)
    found = _read_lexed(sql, lexed)
    if lexed.ambiguous:
        # MySQL and SQLite end a comment at its first "*/", PostgreSQL nests them: read both ways.
        flat = _read_lexed(sql, _lex(sql, nested=False))
        if flat != found and (flat.writes or found.writes):
            found = _union((found, flat))
    return found


def _read_lexed(sql: str, lexed: _Lexed) -> Statement:
    bounds = [0, *(end + 1 for end in lexed.ends), len(sql)]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    pieces = [(a, b) for a, b in pieces if lexed.masked[a:b].strip(" \t\r\n;")]
    if len(pieces) <= 1:
        return _statement(lexed.code, lexed.masked)
    parts = tuple(_statement(lexed.code[a:b], lexed.masked[a:b]) for a, b in pieces)
    return _union(parts)._replace(parts=parts)


def _union(parts: tuple[Statement, ...]) -> Statement:
    """Several statements at once: every table any of them writes, as a whole."""
    tables: list[str] = []
    cascade = unknown = False
    for part in parts:
        tables += part.tables or ((part.table,) if part.table else ())
        cascade = cascade or part.cascade or part.kind == "delete"
        unknown = unknown or part.unknown or part.kind in ("call", "execute")
    written = any(part.writes for part in parts)
    return Statement("tables" if written else "", tables=tuple(dict.fromkeys(tables)), cascade=cascade, unknown=unknown)


def _statement(code: str, masked: str) -> Statement:
    word = _WORD.match(masked)
    if word is None:
        return NOTHING
    reader = _READERS.get(word.group(1).upper())
    at = word.start(1)
    return reader(code, masked, at) if reader is not None else NOTHING


def _names(masked: str, first: str, start: int) -> tuple[str, ...]:
    """A table and the ones listed after it with commas (TRUNCATE a, b; DROP TABLE a, b)."""
    names = [unquote(first)]
    pos = start
    while (item := _LIST_ITEM.match(masked, pos)) is not None:
        names.append(unquote(item.group(1)))
        pos = item.end()
    return tuple(names)


def _whole(*tables: str, cascade: bool = False) -> Statement:
    return Statement("tables", tables=tuple(dict.fromkeys(tables)), cascade=cascade)


def _insert(code: str, masked: str, at: int) -> Statement:
    head = _INSERT.match(masked, at)
    if head is None:
        return NOTHING
    replaces = (head.group("or") or "").upper() == "REPLACE" or bool(_UPSERT.search(masked, head.end()))
    return Statement("upsert" if replaces else "insert", unquote(head.group("table")), head=head.end(), text=masked)


def _replace(code: str, masked: str, at: int) -> Statement:
    head = _REPLACE.match(masked, at)
    if head is None:
        return NOTHING
    return Statement("upsert", unquote(head.group("table")), head=head.end(), text=masked)


def _update(code: str, masked: str, at: int) -> Statement:
    head = _UPDATE.match(masked, at)
    if head is None:
        return NOTHING
    if head.group("simple"):
        return Statement("update", unquote(head.group("table")), head=head.end("table"), text=masked)
    # MySQL's multi-table UPDATE: any table before SET may be written.
    until = re.search(r"\bSET\b", masked[at:], re.I)
    refs = masked[head.start("table") : at + until.start() if until else len(masked)]
    return _whole(*(unquote(name) for name in _REF.findall(refs)))


def _delete(code: str, masked: str, at: int) -> Statement:
    head = _DELETE.match(masked, at)
    if head is None:
        return NOTHING
    if head.group("simple") is not None:
        return Statement("delete", unquote(head.group("table")), head=head.end("table"), text=masked)
    # MySQL's multi-table DELETE (DELETE a FROM a JOIN b, DELETE FROM a, b USING ...): every table named may lose rows.
    words = masked[head.end() :] if head.group("table") is None else masked[head.start("table") :]
    refs = re.split(r"\bWHERE\b", words, maxsplit=1, flags=re.I)[0]
    refs = re.sub(r"\b(?:FROM|USING)\b", ",", refs, flags=re.I)
    return _whole(*(unquote(name) for name in _REF.findall(refs)), cascade=True)


def _truncate(code: str, masked: str, at: int) -> Statement:
    head = _TRUNCATE.match(masked, at)
    if head is None:
        return NOTHING
    names = _names(masked, head.group("table"), head.end())
    return Statement("truncate", tables=names, cascade=bool(_CASCADE.search(masked, head.end())))


def _one_table(pattern: re.Pattern[str], *, deletes: bool = False) -> _Reader:
    def reader(code: str, masked: str, at: int) -> Statement:
        head = pattern.match(masked, at)
        if head is None:
            return NOTHING
        return _whole(unquote(head.group("table")), cascade=deletes and bool(_DELETES.search(masked, head.end())))

    return reader


def _with(code: str, masked: str, at: int) -> Statement:
    block = read_block(masked)
    if block.tables:
        return _whole(*block.tables, cascade=block.cascade)
    return Statement("select", text=masked)


def _select(code: str, masked: str, at: int) -> Statement:
    into = _INTO.search(masked, at)
    if into is not None:
        # PostgreSQL's SELECT ... INTO makes a table (a TEMP one may hide a cached table of the same name).
        return _whole(unquote(into.group("table")))
    return Statement("select", text=masked)


def _ddl(code: str, masked: str, at: int) -> Statement:
    if _DROP_MANY.match(masked, at):
        return Statement("tables", unknown=True, routines_changed=True)
    if _ROUTINE_DDL.match(masked, at):
        return Statement(routines_changed=True)
    head = _TABLE_DDL.match(masked, at)
    if head is None:
        return NOTHING
    names = list(_names(masked, head.group("table"), head.end()))
    renamed = _RENAME_TO.search(masked, head.end())
    if renamed is not None:
        names.append(unquote(renamed.group("table")))
    return _whole(*names)


def _rename(code: str, masked: str, at: int) -> Statement:
    head = _RENAME_TABLE.match(masked, at)
    if head is None:
        return NOTHING
    return _whole(*(unquote(n) for n in re.findall(_QNAME, masked[head.end() :]) if n.upper() != "TO"))


def _explain(code: str, masked: str, at: int) -> Statement:
    head = _EXPLAIN.match(masked, at)
    if head is None:
        return NOTHING
    options = head.group("options") or head.group("words") or ""
    if not re.search(r"\bANALY[SZ]E\b", options, re.I) or _ANALYZE_OFF.search(options):
        return NOTHING  # only EXPLAIN ANALYZE runs the statement
    return _statement(_spaces(code, head.end()), _spaces(masked, head.end()))


def _analyze(code: str, masked: str, at: int) -> Statement:
    head = _ANALYZE_STATEMENT.match(masked, at)
    if head is None:
        return NOTHING  # ANALYZE of a table only updates statistics
    return _statement(_spaces(code, head.end()), _spaces(masked, head.end()))


def _spaces(text: str, end: int) -> str:
    return " " * end + text[end:]


def _call(code: str, masked: str, at: int) -> Statement:
    head = _NAME_AFTER.match(masked, at)
    if head is None:
        return NOTHING
    return Statement("call", target=_routine_name(head.group("name")), unknown=True)


def _execute(code: str, masked: str, at: int) -> Statement:
    head = _NAME_AFTER.match(masked, at)
    if head is None:
        return NOTHING
    return Statement("execute", target=_routine_name(head.group("name")), unknown=True)


def _do(code: str, masked: str, at: int) -> Statement:
    found = _DO_BODY.search(code, at)
    if found is None:
        return Statement("tables", unknown=True)
    language = _DO_LANGUAGE.search(code[: found.start()] + " " + code[found.end() :])
    body = found.group("body") if found.group("tag") is not None else (found.group("quoted") or "").replace("''", "'")
    if language is not None and language.group(1).lower() not in ("plpgsql", "sql"):
        return Statement("tables", unknown=True)
    block = read_block(body)
    return Statement("tables", tables=block.tables, cascade=block.cascade, unknown=block.unknown, calls=block.calls)


def _prepare(code: str, masked: str, at: int) -> Statement:
    if re.match(r"PREPARE\s+TRANSACTION\b", masked[at:], re.I):
        return Statement(ends=True)
    head = _PREPARE.match(code, at)
    if head is None:
        return NOTHING
    name = _routine_name(head.group("name"))
    text = head.group("text")
    body = (
        read(text.replace("''", "'"))
        if text is not None
        else _statement(_spaces(code, head.end()), _spaces(masked, head.end()))
    )
    return Statement(prepares=(name, body))


def _deallocate(code: str, masked: str, at: int) -> Statement:
    head = _DEALLOCATE.match(masked, at)
    return Statement(deallocates=_routine_name(head.group("name"))) if head is not None else NOTHING


def _set(code: str, masked: str, at: int) -> Statement:
    isolation: Isolation | None = None
    if (found := _CHARACTERISTICS.match(code, at)) is not None:
        level = _ISOLATION.search(found.group("rest"))
        isolation = Isolation("session", _level(level.group("level"))) if level else None
    elif (found := _SET_TRANSACTION.match(code, at)) is not None:
        scope = (found.group("scope") or "").strip().upper()
        level = _ISOLATION.search(found.group("rest"))
        if scope == "GLOBAL":
            return NOTHING  # MySQL: sessions opened later
        if level is not None:
            isolation = Isolation("session" if scope else "transaction", _level(level.group("level")))
        elif _SNAPSHOT.match(found.group("rest")):
            isolation = Isolation("transaction", "repeatable read")  # an imported snapshot needs one
    elif (found := _SET_VARIABLE.match(code, at)) is not None:
        isolation = _variable(found)
    return Statement(isolation=isolation) if isolation is not None else NOTHING


def _variable(found: re.Match[str]) -> Isolation | None:
    scope = ((found.group("scope") or "").strip() or (found.group("atscope") or "")).upper()
    if scope == "GLOBAL":
        return None
    value = found.group("quoted") or found.group("dquoted") or found.group("word") or ""
    if value.upper() == "DEFAULT":
        return Isolation("reset", "")
    level = _level(value)
    name = found.group("name").lower()
    if name == "default_transaction_isolation" and scope != "LOCAL":
        return Isolation("session", level)
    if name == "transaction_isolation" and level in STRICT_LEVELS:
        # PostgreSQL sets the current transaction, MySQL the session: count both.
        return Isolation("session", level)
    return Isolation("transaction", level) if name != "tx_isolation" else Isolation("session", level)


def _level(text: str) -> str:
    return " ".join(text.replace("-", " ").lower().split())


def _begin(code: str, masked: str, at: int) -> Statement:
    found = _BEGIN.match(code, at)
    if found is None:
        return NOTHING
    level = _ISOLATION.search(found.group("rest"))
    return Statement(begins=True, isolation=Isolation("transaction", _level(level.group("level"))) if level else None)


def _start(code: str, masked: str, at: int) -> Statement:
    return _begin(code, masked, at) if re.match(r"START\s+TRANSACTION\b", masked[at:], re.I) else NOTHING


def _end(code: str, masked: str, at: int) -> Statement:
    return Statement(ends=True) if _END.match(masked, at) else NOTHING


def _reset(code: str, masked: str, at: int) -> Statement:
    return Statement(isolation=Isolation("reset", "")) if _RESET.match(masked, at) else NOTHING


def _routine_name(name: str) -> str:
    return unquote(name) if name[:1] in ('"', "`") else name.lower()


def _read_calls(text: str) -> frozenset[str]:
    return frozenset(_routine_name(name) for name in _CALL.findall(text))


def _read_block(body: str) -> Block:
    masked = _lex(body).masked
    tables: dict[str, None] = {}
    cascade = False
    for write in _ANY_WRITE.finditer(masked):
        kind = write.group("kind").upper()
        names = _names(masked, write.group("table"), write.end()) if kind.startswith("TRUNCATE") else None
        tables.update(dict.fromkeys(names or (unquote(write.group("table")),)))
        cascade = cascade or kind.startswith(("DELETE", "TRUNCATE", "DROP", "MERGE"))
    for name in _INTO.findall(masked):
        # SELECT ... INTO in SQL makes a table; in PL/pgSQL it fills a variable, which names no table.
        tables.setdefault(unquote(name), None)
    return Block(tuple(tables), cascade, bool(_DYNAMIC.search(masked)), _read_calls(masked))


_READERS = {
    "INSERT": _insert,
    "REPLACE": _replace,
    "UPSERT": _replace,
    "UPDATE": _update,
    "DELETE": _delete,
    "TRUNCATE": _truncate,
    "MERGE": _one_table(_MERGE, deletes=True),
    "REFRESH": _one_table(_REFRESH),
    "COPY": _one_table(_COPY),
    "LOAD": _one_table(_LOAD),
    "WITH": _with,
    "SELECT": _select,
    "ALTER": _ddl,
    "DROP": _ddl,
    "CREATE": _ddl,
    "RENAME": _rename,
    "EXPLAIN": _explain,
    "ANALYZE": _analyze,
    "ANALYSE": _analyze,
    "CALL": _call,
    "EXECUTE": _execute,
    "DO": _do,
    "PREPARE": _prepare,
    "DEALLOCATE": _deallocate,
    "SET": _set,
    "BEGIN": _begin,
    "START": _start,
    "COMMIT": _end,
    "END": _end,
    "ABORT": _end,
    "ROLLBACK": _end,
    "RESET": _reset,
    "DISCARD": _reset,
}
