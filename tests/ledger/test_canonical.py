"""The fast canonical encoder is byte-identical to the RFC 8785 reference on every entry shape."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ledger.canonical import canonical_bytes

# Any Unicode a client may send (surrogates are refused at the schema), any safe integer.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
safe_int = st.integers(min_value=0, max_value=2**53 - 1)

human = st.fixed_dictionaries({
    "type": st.just("human"), "role": text, "organization": text, "country": text,
    "pseudonym": text, "id_commitment": text,
})
algorithm = st.fixed_dictionaries(
    {"type": st.just("algorithm"), "id": text, "role": text},
    optional={"version": text, "organization": text, "country": text},
)
access_entry = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["access", "access_decision", "consent_changed"]),
        "customer_id": text, "customer_seq": safe_int, "prev_hash": text, "recorded_at": text,
        "recorded_by": text, "nonce": text, "flags": st.lists(text, max_size=3),
        "event_id": text, "clip_id": text, "occurred_at": text, "actor": human | algorithm,
        "action": text, "media": st.lists(text, max_size=4), "purpose": text,
    },
    optional={
        "justification": text, "authorization_id": text,
        "consent": st.dictionaries(text, st.booleans(), max_size=3),
        "clip_ids": st.lists(text, max_size=5),
    },
)


@settings(max_examples=400)
@given(access_entry)
def test_fast_encoder_matches_rfc8785(entry: dict) -> None:
    assert canonical_bytes(entry) == rfc8785.dumps(entry)


@given(st.recursive(
    st.none() | st.booleans() | safe_int | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12), inner, max_size=4
    ),
    max_leaves=20,
))
def test_fast_encoder_matches_rfc8785_on_nested_values_with_ascii_keys(value: object) -> None:
    assert canonical_bytes({"v": value}) == rfc8785.dumps({"v": value})
