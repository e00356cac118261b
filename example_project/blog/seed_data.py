"""Built-in word lists and a small text generator for ``manage.py seed_blog``.

No external dependency: everything is drawn from these lists with a
``random.Random`` the caller seeds, so ``--seed 42`` gives the same blog on
every machine.
"""

import random
from collections.abc import Iterator

from django.utils.text import slugify

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Andrea", "Anika", "Arjun", "Beatriz", "Bruno", "Camille",
    "Carlos", "Chen", "Chiara", "Dana", "Daniel", "Dmitri", "Elena", "Elif", "Emeka", "Emma",
    "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Jonas", "Julia",
    "Kai", "Kenji", "Lars", "Layla", "Leila", "Lucas", "Maya", "Mei", "Mateo", "Nadia",
    "Noah", "Nora", "Olga", "Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara", "Sofia",
    "Tariq", "Theo", "Tomas", "Valentina", "Wei", "Yara", "Yusuf", "Zoe",
)  # fmt: skip

LAST_NAMES = (
    "Abebe", "Andersen", "Bauer", "Becker", "Bianchi", "Costa", "Dubois", "Eriksson", "Fischer", "Garcia",
    "Haddad", "Hoffmann", "Ivanova", "Jensen", "Kaur", "Kim", "Kowalski", "Larsen", "Lopez", "Martin",
    "Moreau", "Müller", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen", "Park", "Patel", "Pereira",
    "Petrov", "Rossi", "Santos", "Schmidt", "Silva", "Singh", "Suzuki", "Tanaka", "Torres", "Varga",
    "Weber", "Wójcik", "Yamamoto", "Yilmaz", "Zhang",
)  # fmt: skip

ROLES = (
    "backend developer", "site reliability engineer", "database administrator", "Django contributor",
    "freelance consultant", "platform engineer", "tech lead", "data engineer", "open source maintainer",
    "performance engineer",
)  # fmt: skip

CITIES = (
    "Lisbon", "Berlin", "Lagos", "Montreal", "Osaka", "Nairobi", "Kraków", "Buenos Aires", "Melbourne",
    "Tallinn", "Seoul", "Bristol", "Porto Alegre", "Pune", "Utrecht",
)  # fmt: skip

INTERESTS = (
    "query planners", "cache invalidation", "observability", "fast test suites", "PostgreSQL internals",
    "incident reviews", "API design", "Python packaging", "load testing", "readable code",
)  # fmt: skip

CATEGORIES = (
    "Databases", "Performance", "Python", "Django", "Operations", "Testing", "Architecture", "Security",
)  # fmt: skip

TAG_WORDS = (
    "caching", "redis", "postgresql", "sqlite", "orm", "queries", "indexes", "latency", "throughput",
    "profiling", "benchmarks", "deployment", "docker", "kubernetes", "monitoring", "logging", "metrics",
    "tracing", "async", "celery", "migrations", "transactions", "replication", "sharding", "security",
    "testing", "ci", "refactoring", "typing", "packaging", "http", "cdn", "etag", "sessions", "templates",
    "admin", "forms", "signals", "middleware", "websockets",
)  # fmt: skip

TAG_QUALIFIERS = ("advanced", "beginner", "practical", "production", "legacy", "modern", "distributed", "local")

TOPICS = (
    "cache invalidation", "query caching", "database indexes", "connection pooling", "N+1 queries",
    "select_related", "prefetch_related", "Redis pipelines", "HTTP caching", "ETags", "read replicas",
    "background jobs", "schema migrations", "transaction isolation", "load testing", "cold starts",
    "template fragments", "bulk inserts", "pagination", "full-text search", "rate limiting",
    "circuit breakers", "cache stampedes", "time zones", "feature flags", "zero-downtime deploys",
)  # fmt: skip

TOOLS = (
    "Django", "PostgreSQL", "Redis", "SQLite", "Memcached", "Gunicorn", "Uvicorn", "Celery", "Nginx",
    "pytest", "the ORM", "Docker", "Prometheus", "Grafana",
)  # fmt: skip

ADJECTIVES = (
    "practical", "gentle", "complete", "pragmatic", "quick", "honest", "opinionated", "visual",
    "hands-on", "short", "deep", "field-tested",
)  # fmt: skip

TITLE_TEMPLATES = (
    "A {adjective} guide to {topic}",
    "{topic_cap} with {tool}: what we learned",
    "Why {topic} is harder than it looks",
    "How we cut our p99 latency with {topic}",
    "{topic_cap} in {tool}, explained",
    "Ten mistakes with {topic}",
    "Stop guessing: measuring {topic}",
    "{topic_cap} without tears",
    "What {tool} taught us about {topic}",
    "The {adjective} case for {topic}",
    "Debugging {topic} in production",
    "From zero to {topic} in an afternoon",
    "Notes on {topic} and {other_topic}",
    "When not to use {topic}",
)  # fmt: skip

SENTENCES = (
    "We started with a single server and a database that fit in memory.",
    "The first version worked, until traffic doubled over a weekend.",
    "Most of the time went into queries that returned the same rows again and again.",
    "Caching them was easy; knowing when to throw the results away was not.",
    "A stale page is worse than a slow one, because nobody notices it until a customer does.",
    "So we measured before changing anything.",
    "The slow query log told a different story from the one we expected.",
    "Half of the requests were served by three queries.",
    "An index on the right column removed most of the load at once.",
    "The rest needed a cache that understood our models.",
    "Every write now invalidates exactly the entries that read the rows it changed.",
    "Versioned tags make that cheap: one increment retires any number of entries.",
    "Nothing has to be scanned or deleted, and old entries simply expire.",
    "Transactions complicate the picture, since a rollback must invalidate nothing.",
    "We wrote the tests first, and they caught two races before production did.",
    "The benchmark numbers were encouraging, but the real proof came from the graphs.",
    "Database CPU dropped by two thirds within an hour of the deploy.",
    "Latency at the 99th percentile stopped following the traffic curve.",
    "There were surprises, of course.",
    "An admin action updated thousands of rows without sending a single signal.",
    "A nightly job wrote with raw SQL and bypassed everything we had built.",
    "We fixed both by watching the SQL itself rather than the ORM calls.",
    "It is tempting to cache everything; it is wiser to cache what is read often and written rarely.",
    "Timeouts are a safety net, not an invalidation strategy.",
    "If the cache goes away, the site must keep working, only slower.",
    "A circuit breaker keeps a dead cache server from taking the application down with it.",
    "Cold starts deserve attention too: a warm-up command fills the cache before traffic does.",
    "We also learned to read query plans instead of guessing.",
    "Small, boring changes added up to a large improvement.",
    "Code review caught more problems than any tool did.",
    "Documentation turned out to be the feature people thanked us for.",
    "The next step is to move session storage off the database as well.",
    "If you try this at home, start with the pages people actually visit.",
    "Keep the numbers from before the change, or you will never know what it bought you.",
    "Questions and corrections are welcome in the comments below.",
)  # fmt: skip

COMMENT_SENTENCES = (
    "Great write-up, thanks!",
    "This matches what we saw in production almost exactly.",
    "How did you handle invalidation inside long transactions?",
    "Did you compare this with a plain per-view cache?",
    "We tried something similar with Memcached and hit the key length limit.",
    "The part about rollbacks saved me a debugging session.",
    "Would love a follow-up with the actual benchmark scripts.",
    "Any numbers on memory usage in Redis?",
    "I think the second graph has its axes swapped.",
    "Bookmarked. Sharing this with the team tomorrow.",
    "What happens when the cache server restarts?",
    "Clear and to the point, as usual.",
    "We learned the same lesson the hard way last year.",
    "Does this work with read replicas?",
    "Small typo in the third paragraph, otherwise excellent.",
    "Thanks for mentioning the raw SQL case; nobody ever does.",
)  # fmt: skip


def person_names(rng: random.Random, count: int) -> Iterator[tuple[str, str]]:
    """``count`` distinct ``(name, email)`` pairs."""
    seen: set[str] = set()
    while len(seen) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        if name in seen:
            if len(seen) >= len(FIRST_NAMES) * len(LAST_NAMES):
                name = f"{name} {len(seen) + 1}"
            else:
                continue
        seen.add(name)
        yield name, f"{slugify(name).replace('-', '.')}.{len(seen)}@example.com"


def bio(rng: random.Random) -> str:
    return (
        f"{rng.choice(ROLES).capitalize()} based in {rng.choice(CITIES)}. "
        f"Writes about {rng.choice(INTERESTS)} and {rng.choice(INTERESTS)}."
    )


def tag_names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct tag names: plain words first, then qualified ones."""
    words = list(TAG_WORDS)
    rng.shuffle(words)
    names = words[:count]
    pairs = [f"{q} {w}" for q in TAG_QUALIFIERS for w in TAG_WORDS]
    rng.shuffle(pairs)
    names += pairs[: count - len(names)]
    n = 1
    while len(names) < count:
        names.append(f"{rng.choice(TAG_WORDS)} {n}")
        n += 1
    return names


def title(rng: random.Random) -> str:
    topic, other = rng.sample(TOPICS, 2)
    text = rng.choice(TITLE_TEMPLATES).format(
        adjective=rng.choice(ADJECTIVES),
        topic=topic,
        topic_cap=topic[0].upper() + topic[1:],
        other_topic=other,
        tool=rng.choice(TOOLS),
    )
    return text[0].upper() + text[1:]


def paragraphs(rng: random.Random, low: int = 3, high: int = 7) -> str:
    return "\n\n".join(" ".join(rng.sample(SENTENCES, rng.randint(3, 6))) for _ in range(rng.randint(low, high)))


def comment(rng: random.Random) -> str:
    return " ".join(rng.sample(COMMENT_SENTENCES, rng.randint(1, 3)))
