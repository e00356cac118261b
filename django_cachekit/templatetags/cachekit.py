"""``{% load cachekit %}``: template fragments cached on the versions of their objects.

``{% cachefragment "name" obj1 obj2 ... timeout=600 tags="a,b" vary=value %}...{% endcachefragment %}``

The work is done by ``django_cachekit.fragments``; this module parses the tag,
checks what it can when the template is compiled, keys a fragment on the blocks
that actually render inside it (a child template's overrides), and prefetches
the entries of a fragment inside ``{% for %}`` for every item of the loop in one
round trip.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django import template
from django.db.models import QuerySet
from django.template.base import FilterExpression, Node, NodeList, Origin, Parser, Token, TokenType, Variable
from django.template.context import Context
from django.template.loader_tags import BLOCK_CONTEXT_KEY, BlockContext, BlockNode
from django.utils.safestring import SafeString, mark_safe

from django_cachekit import fragments
from django_cachekit.core import flow, keys, protocol

register = template.Library()

KEYWORDS = ("timeout", "tags", "vary")
# Items of a loop whose fragment entries are read in one round trip.
PREFETCH_WINDOW = 200
_KWARG = re.compile(r"(\w+)=(.+)\Z", re.S)
_TOKEN_FORMATS = {
    TokenType.TEXT: "{}",
    TokenType.VAR: "{{{{ {} }}}}",
    TokenType.BLOCK: "{{% {} %}}",
    TokenType.COMMENT: "{{# {} #}}",
}


@dataclass(frozen=True)
class Loop:
    """The ``{% for %}`` around a fragment whose arguments use its loop variables."""

    loopvars: tuple[str, ...]
    sequence: FilterExpression
    is_reversed: bool


@dataclass
class _Prefetched:
    """What one run of a loop prefetched for one fragment tag."""

    forloop: dict[str, Any]
    items: list[Any] | None = None
    upto: int = 0
    done: bool = False
    found: dict[str, flow.Read] = field(default_factory=dict)


class CacheFragmentNode(Node):
    child_nodelists = ("nodelist",)

    def __init__(
        self,
        name: str,
        objects: list[tuple[str, FilterExpression]],
        options: dict[str, tuple[str, FilterExpression]],
        nodelist: NodeList,
        source: str,
        loop: Loop | None,
        uses_super: bool = False,
    ) -> None:
        self.name = name
        self.objects = objects
        self.options = options
        self.nodelist = nodelist
        self.source = source
        self.loop = loop
        inside = _block_nodes(nodelist)
        self.blocks = tuple(dict.fromkeys(n.name for n in inside))  # the {% block %}s inside the fragment
        self._own_blocks = BlockContext()  # what renders without {% extends %}
        self._own_blocks.add_blocks({n.name: n for n in inside})
        self.uses_super = uses_super  # whether it shows {{ block.super }}

    def __repr__(self) -> str:
        return f"<CacheFragmentNode {self.name!r}>"

    def _error(self, message: str) -> template.TemplateSyntaxError:
        return template.TemplateSyntaxError(f"{{% cachefragment {self.name!r} %}}: {message}")

    def describe(self, context: Context) -> tuple[fragments.Fragment, Any]:
        """The fragment this tag renders in ``context``, and its timeout."""
        labels = [text for text, _ in self.objects]
        values = [expr.resolve(context) for _, expr in self.objects]
        timeout: Any = fragments.DEFAULT
        tags: list[str] = []
        vary = None
        if "timeout" in self.options:
            text, expr = self.options["timeout"]
            timeout = expr.resolve(context)
            try:
                fragments.validate_timeout(timeout)
            except ValueError as exc:
                raise self._error(f"timeout={text} is {timeout!r}. {exc}") from None
        if "tags" in self.options:
            text, expr = self.options["tags"]
            tags = self._tags(text, expr.resolve(context))
        if "vary" in self.options:
            vary = self.options["vary"][1].resolve(context)
        try:
            frag = fragments.fragment(
                self.name, values, source=self._source(context), tags=tags, vary=vary, labels=labels
            )
        except (TypeError, ValueError) as exc:
            raise self._error(str(exc)) from None
        return frag, timeout

    def _source(self, context: Context) -> str:
        """The digest of the template text this render shows: the tag's own, and when it is
        rendered for a child template, every block that can render inside it (the child's
        overrides, and what ``{{ block.super }}`` shows)."""
        if not self.blocks and not self.uses_super:
            return self.source
        block_context = context.render_context.get(BLOCK_CONTEXT_KEY)
        if not isinstance(block_context, BlockContext):  # no {% extends %}: its own blocks render
            block_context = self._own_blocks
        names = list(self.blocks)
        enclosing = context.get("block")
        if self.uses_super and isinstance(enclosing, BlockNode):
            names.append(enclosing.name)  # its supers are what is left of its name's blocks
        return keys.digest(keys.exact((self.source, _resolved_blocks(block_context, names))))

    def _tags(self, text: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = split_tags(value)
        if not isinstance(value, (list, tuple)):
            raise self._error(f"tags={text} must give a comma-separated string or a list, not {value!r}.")
        try:
            keys.user_tags(value)
        except ValueError as exc:
            raise self._error(f"tags={text} gives {value!r}. {exc}") from None
        return list(value)

    def render(self, context: Context) -> SafeString:
        frag, timeout = self.describe(context)
        found = self._prefetched(context, frag) if self.loop is not None and protocol.reading() else None
        return mark_safe(fragments.render(frag, lambda: self.nodelist.render(context), timeout, found))

    def _prefetched(self, context: Context, frag: fragments.Fragment) -> flow.Read | None:
        forloop = context.get("forloop")
        if not isinstance(forloop, dict) or not isinstance(forloop.get("counter0"), int):
            return None
        state = context.render_context.get(self)
        if state is None or state.forloop is not forloop:
            state = context.render_context[self] = _Prefetched(forloop)
        found = state.found.pop(frag.key, None)
        index = forloop["counter0"]
        if found is None and not state.done and index >= state.upto:
            self._prefetch(context, state, index)
            found = state.found.pop(frag.key, None)
        return found

    def _prefetch(self, context: Context, state: _Prefetched, index: int) -> None:
        loop = self.loop
        assert loop is not None
        if state.items is None:
            values = loop.sequence.resolve(context, ignore_failures=True)
            # Only what the loop already holds: resolving a queryset-producing
            # expression again would run its query a second time.
            held = (
                values._result_cache is not None
                if isinstance(values, QuerySet)
                else isinstance(values, Sequence) and not isinstance(values, (str, bytes))
            )
            if not held:
                state.done = True
                return
            state.items = list(values)
            if loop.is_reversed:
                state.items.reverse()
        window = state.items[index : index + PREFETCH_WINDOW]
        state.upto = index + len(window)
        state.done = state.upto >= len(state.items)
        wanted = []
        with context.push():
            for item in window:
                try:
                    if len(loop.loopvars) == 1:
                        context[loop.loopvars[0]] = item
                    else:
                        for var, value in zip(loop.loopvars, item, strict=True):
                            context[var] = value
                    wanted.append(self.describe(context)[0])
                except Exception:  # the item's own render reports what is wrong with it
                    continue
        state.found.update(fragments.fetch_many(wanted))


def split_tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def _roots(expr: FilterExpression) -> Iterator[str]:
    """The first names of the variables an expression reads."""
    if isinstance(expr.var, Variable) and expr.var.lookups:
        yield expr.var.lookups[0]
    for _, args in expr.filters:
        for lookup, arg in args:
            if lookup and arg.lookups:
                yield arg.lookups[0]


def _literal(expr: FilterExpression) -> tuple[bool, Any]:
    """``(True, value)`` when ``expr`` is a constant without filters."""
    if expr.filters:
        return False, None
    var = expr.var
    if not isinstance(var, Variable):
        return True, str(var)
    if var.literal is not None:
        return True, var.literal
    if var.lookups == ("None",):
        return True, None
    return False, None


def _enclosing_loop(parser: Parser, exprs: Sequence[FilterExpression]) -> Loop | None:
    """The innermost ``{% for %}`` of this template around the tag, if the tag uses its variables."""
    for command, token in reversed(parser.command_stack):
        if command != "for":
            continue
        bits = token.split_contents()
        is_reversed = bits[-1] == "reversed"
        in_index = -3 if is_reversed else -2
        if len(bits) < 4 or bits[in_index] != "in":
            return None
        loopvars = tuple(re.split(r" *, *", " ".join(bits[1:in_index])))
        sequence = parser.compile_filter(bits[in_index + 1])
        used = {root for expr in exprs for root in _roots(expr)}
        if used.isdisjoint(loopvars) or not set(_roots(sequence)).isdisjoint(loopvars):
            return None
        return Loop(loopvars, sequence, is_reversed)
    return None


def _body_source(parser: Parser, parse: Any) -> tuple[NodeList, str]:
    """Parse up to ``{% endcachefragment %}``; return the nodes and the text they came from."""
    before: list[Token] = list(cast("list[Token]", parser.tokens))  # the next token is the last one
    nodelist = parse()
    consumed = before[len(parser.tokens) :]
    consumed.reverse()
    text = "".join(_TOKEN_FORMATS[t.token_type].format(t.contents) for t in consumed)
    return nodelist, text


_BLOCK_SOURCES: weakref.WeakKeyDictionary[BlockNode, tuple[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def _resolved_blocks(block_context: BlockContext, names: list[str]) -> list[str]:
    """The digests of the blocks of ``names`` that this render can show, and of the blocks inside them."""
    found: list[str] = []
    seen: set[str] = set()
    while names:
        name = names.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for block in block_context.blocks.get(name, ()):  # the override last, then what block.super shows
            described, inner = _block_source(block)
            found.append(described)
            names += inner
    return found


def _block_source(block: BlockNode) -> tuple[str, tuple[str, ...]]:
    """A digest of a block's template name and text, and the names of the blocks inside it (once per compilation)."""
    known = _BLOCK_SOURCES.get(block)
    if known is None:
        text = keys.exact((_template_name(getattr(block, "origin", None)), block.name, _nodes_text(block.nodelist)))
        inner = tuple(n.name for n in _block_nodes(block.nodelist))
        known = _BLOCK_SOURCES[block] = (keys.digest(text), inner)
    return known


def _block_nodes(nodelist: NodeList) -> list[BlockNode]:
    return [n for n in nodelist.get_nodes_by_type(BlockNode) if isinstance(n, BlockNode)]


def _template_name(origin: Origin | None) -> str:
    # A plain str: the name of a template loaded by {% extends %} is a SafeString, and keys tell types apart.
    return str.__str__((origin.template_name or origin.name) or "") if origin is not None else ""


def _nodes_text(nodelist: NodeList) -> list[Any]:
    """The tokens the nodes were parsed from, nested as the nodes are."""
    text: list[Any] = []
    for node in nodelist:
        token = getattr(node, "token", None)
        text.append((type(node).__name__, str.__str__(token.contents) if isinstance(token, Token) else ""))
        for condition, _ in getattr(node, "conditions_nodelists", ()):  # {% elif %} keeps no token
            text.append(repr(condition))
        for attr in node.child_nodelists:
            child = getattr(node, attr, None)
            if isinstance(child, NodeList):
                text.append(_nodes_text(child))
    return text


@register.tag("cachefragment")
def do_cachefragment(parser: Parser, token: Token) -> CacheFragmentNode:
    """``{% cachefragment "name" obj ... timeout=600 tags="a,b" vary=value %}...{% endcachefragment %}``

    Renders the body once and serves it from the cache until one of the objects
    (or a child that ``touch``-es it), the template text or a tag changes.
    """
    bits = token.split_contents()
    tag = bits[0]
    if len(bits) < 2:
        raise template.TemplateSyntaxError(f"{{% {tag} %}} needs a fragment name, a quoted string, first.")
    first = bits[1]
    if len(first) < 2 or first[0] not in "\"'" or first[-1] != first[0] or _KWARG.match(first):
        raise template.TemplateSyntaxError(
            f"{{% {tag} %}} needs a fragment name as a quoted string first, not {first!r}."
        )
    name = first[1:-1]
    if not name:
        raise template.TemplateSyntaxError(f"{{% {tag} %}} needs a non-empty fragment name, not {first}.")
    objects: list[tuple[str, FilterExpression]] = []
    options: dict[str, tuple[str, FilterExpression]] = {}
    for bit in bits[2:]:
        match = _KWARG.match(bit)
        if match is None:
            if options:
                raise template.TemplateSyntaxError(
                    f"{{% {tag} {first} %}}: the object {bit!r} comes after a keyword argument; objects go first."
                )
            expr = parser.compile_filter(bit)
            is_constant, value = _literal(expr)
            if is_constant and value is not None:
                raise template.TemplateSyntaxError(
                    f"{{% {tag} {first} %}}: {bit!r} is a {type(value).__name__} literal, not a model instance; "
                    "fragments depend on model instances (use vary= for other values)."
                )
            objects.append((bit, expr))
            continue
        keyword, text = match.groups()
        if keyword not in KEYWORDS:
            raise template.TemplateSyntaxError(
                f"{{% {tag} {first} %}}: unknown keyword argument {keyword!r}; it takes "
                f"{', '.join(k + '=' for k in KEYWORDS)}."
            )
        if keyword in options:
            raise template.TemplateSyntaxError(f"{{% {tag} {first} %}}: {keyword}= is given twice.")
        expr = parser.compile_filter(text)
        _check_option(tag, first, keyword, text, expr)
        options[keyword] = (text, expr)
    exprs = [expr for _, expr in objects] + [expr for _, expr in options.values()]
    loop = _enclosing_loop(parser, exprs)
    nodelist, body = _body_source(parser, lambda: parser.parse(("endcachefragment",)))
    parser.delete_first_token()
    source = keys.digest(keys.exact((_template_name(parser.origin), token.contents, body)))
    return CacheFragmentNode(name, objects, options, nodelist, source, loop, "block.super" in body)


def _check_option(tag: str, first: str, keyword: str, text: str, expr: FilterExpression) -> None:
    is_constant, value = _literal(expr)
    if not is_constant:
        return
    if keyword == "timeout":
        try:
            fragments.validate_timeout(value)
        except ValueError as exc:
            raise template.TemplateSyntaxError(f"{{% {tag} {first} %}}: timeout={text} is not valid. {exc}") from None
    elif keyword == "tags":
        if not isinstance(value, str) or not split_tags(value):
            raise template.TemplateSyntaxError(
                f'{{% {tag} {first} %}}: tags={text} must be a comma-separated string such as tags="a,b".'
            )
        try:
            keys.user_tags(split_tags(value))
        except ValueError as exc:
            raise template.TemplateSyntaxError(f"{{% {tag} {first} %}}: tags={text} is not valid. {exc}") from None
