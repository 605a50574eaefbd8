"""A secret is masked as written and in each disguise a template or a script commonly gives it."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows_app.engine.masking import MASK, MIN_LENGTH, mask, mask_value, secret_values, with_disguises

DISGUISES = {
    "as written": lambda s: s,
    "upper case": str.upper,
    "lower case": str.lower,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 without padding": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "url-safe base64": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "url-safe base64 without padding": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "url quote": urllib.parse.quote,
    "url quote, slashes too": lambda s: urllib.parse.quote(s, safe=""),
    "url quote_plus": urllib.parse.quote_plus,
    "json-escaped": lambda s: json.dumps(s)[1:-1],
    "json-escaped, unicode kept": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "hex": lambda s: s.encode().hex(),
    "upper-case hex": lambda s: s.encode().hex().upper(),
}

SECRET = 'p@ss w/rd+"ünï"\n?&=x'


def env_of(**secrets: str) -> dict[str, str]:
    return {f"SECRET_{name}": base64.b64encode(value.encode()).decode() for name, value in secrets.items()}


@pytest.mark.parametrize("disguise", DISGUISES.values(), ids=DISGUISES.keys())
def test_each_disguise_of_a_secret_is_masked(disguise):
    values = secret_values(env_of(PW=SECRET))
    assert mask(f"before {disguise(SECRET)} after", values) == f"before {MASK} after"


@pytest.mark.parametrize("disguise", DISGUISES.values(), ids=DISGUISES.keys())
def test_each_disguise_of_a_registered_value_is_masked(disguise):
    values = with_disguises(["tok-123"])
    assert mask(f"token={disguise('tok-123')};", values) == f"token={MASK};"


def test_any_mix_of_cases_is_masked():
    values = secret_values(env_of(PW="hunter22"))
    assert mask("HuNtEr22 and hUNTER22", values) == f"{MASK} and {MASK}"


def test_case_changes_that_change_the_length_are_masked():
    values = with_disguises(["straße-key"])
    assert mask("STRASSE-KEY, Straße-Key, straße-key", values) == f"{MASK}, {MASK}, {MASK}"


def only_secret_characters(before: bytes, data: bytes, after: bytes) -> tuple[str, str]:
    """The base64 of `before + data + after`, and its characters that `data`'s bits alone make."""
    encoded = base64.b64encode(before + data + after).decode()
    return encoded, encoded[-(-8 * len(before) // 6) : 8 * (len(before) + len(data)) // 6]


@pytest.mark.parametrize("before", [b"", b"u", b"us", b"user:"])  # the secret starts 0, 1 or 2 bytes into a group
def test_the_base64_of_a_text_holding_the_secret_is_masked_but_for_its_ends(before):
    encoded, carried = only_secret_characters(before, b"hunter2-long", b"@host")
    masked = mask(encoded, secret_values(env_of(PW="hunter2-long")))
    assert carried not in masked
    assert len(masked) - len(MASK) <= len(encoded) - len(carried)


def test_secret_values_are_the_values_and_their_disguises_longest_first():
    values = secret_values(env_of(PW="hunter2"))
    assert {"hunter2", "HUNTER2", "aHVudGVyMg==", "aHVudGVyMg", "68756e74657232"} <= set(values)
    assert values == sorted(values, key=len, reverse=True)


def test_each_line_of_a_multiline_secret_and_each_text_of_a_json_secret_is_a_secret():
    values = secret_values(env_of(KEY="first line\nsecond line", DB='{"user": "bob", "password": "s3cr3t!"}'))
    assert mask("first line; SECOND LINE; s3cr3t!", values) == f"{MASK}; {MASK}; {MASK}"


def test_secrets_are_read_as_secret_reads_them_wrapped_and_without_padding():
    value = "a long certificate-like secret " * 4
    encoded = base64.b64encode(value.encode()).decode().rstrip("=")
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))  # as `base64` prints it
    assert mask(value, secret_values({"SECRET_CERT": wrapped})) == MASK


def test_values_that_are_not_secrets_are_left_alone():
    values = secret_values({"SECRET_BAD": "%%% not base64 %%%", "OTHER": base64.b64encode(b"public").decode()})
    assert mask("public text", values) == "public text"


def test_values_under_the_minimum_length_are_not_masked():
    assert with_disguises(["ab", "  c  "]) == []
    assert mask("ab is ordinary text", secret_values(env_of(SHORT="ab"))) == "ab is ordinary text"


def test_mask_value_masks_strings_through_json_data():
    values = with_disguises(["tok-123"])
    data = {"tok-123": ["a TOK-123", {"b": "dG9rLTEyMw=="}], "n": 5}
    assert mask_value(data, values) == {MASK: [f"a {MASK}", {"b": MASK}], "n": 5}


def test_a_registered_value_joins_the_known_ones():
    known = secret_values(env_of(PW="hunter2"))
    values = with_disguises(["tok-123"], known=known)
    assert mask("hunter2 tok-123", values) == f"{MASK} {MASK}"
    assert set(known) < set(values)


# ---- properties ---------------------------------------------------------------------------------

# A secret made of the mask's own asterisks would be found again in the mask.
secrets = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=MIN_LENGTH).filter(
    lambda s: len(s.strip()) >= MIN_LENGTH
)
surroundings = st.text(max_size=40)


@given(secret=secrets, before=surroundings, after=surroundings, name=st.sampled_from(sorted(DISGUISES)))
def test_no_disguise_of_a_secret_survives_masking(secret, before, after, name):
    disguised = DISGUISES[name](secret)
    masked = mask(before + disguised + after, secret_values(env_of(PW=secret)))
    assert disguised not in masked
    assert secret not in masked


@given(
    secret=secrets.filter(lambda s: len(s.encode()) >= 6), before=st.binary(max_size=10), after=st.binary(max_size=10)
)
def test_the_base64_characters_that_carry_only_the_secret_never_survive(secret, before, after):
    encoded, carried = only_secret_characters(before, secret.encode(), after)
    assert carried not in mask(encoded, secret_values(env_of(PW=secret)))
