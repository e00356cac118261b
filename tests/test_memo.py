"""Bounded memos: what is worked out from repeated values is kept, within limits."""

from django_cachekit.memo import Memo


def test_a_full_memo_starts_over():
    memo: Memo[int, str] = Memo(size=3)
    for i in range(3):
        assert memo.remember(i, str(i)) == str(i)
    assert dict(memo) == {0: "0", 1: "1", 2: "2"}
    assert memo.remember(3, "3") == "3"
    assert dict(memo) == {3: "3"}


def test_long_text_keys_are_not_kept():
    memo: Memo[str, int] = Memo(longest=10)
    assert memo.remember("x" * 11, 1) == 1
    assert memo.remember("x" * 10, 2) == 2
    assert dict(memo) == {"x" * 10: 2}


def test_a_value_is_computed_once_and_then_remembered():
    computed = []

    def compute(key: str) -> int:
        computed.append(key)
        return len(key)

    memo: Memo[str, int] = Memo()
    assert memo.of("abc", compute) == 3
    assert memo.of("abc", compute) == 3
    assert memo.of("de", compute) == 2
    assert computed == ["abc", "de"]
