"""Request bodies → items: every accepted form, and a precise error for every malformed one."""

from __future__ import annotations

import base64
import json

import pytest

from cloudpose import errors
from cloudpose.codec import decode_base64, parse_body

DATA = b"\xff\xd8\xff\xe0 not really a jpeg"
B64 = base64.b64encode(DATA).decode()


def parse(doc, max_batch=4):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_body(body, max_batch=max_batch)


def test_single_object():
    parsed = parse({"id": "a", "image": B64, "extra": 1})
    assert not parsed.batch and [(i.id, i.data) for i in parsed.items] == [("a", DATA)]


def test_double_encoded_object():
    assert parse(json.dumps({"id": "a", "image": B64})).items[0].data == DATA


def test_batch_forms_keep_order_and_number_bare_strings():
    parsed = parse({"images": [B64, {"id": "x", "image": B64}, B64]})
    assert parsed.batch and [i.id for i in parsed.items] == ["0", "x", "2"]
    assert [i.id for i in parse([B64, B64]).items] == ["0", "1"]


@pytest.mark.parametrize(
    "doc, error, words",
    [
        (b"{", errors.InvalidJSON, "not valid JSON"),
        (b"   ", errors.InvalidJSON, "empty body"),
        ({"id": "a"}, errors.InvalidRequest, "image: field required"),
        ({"id": None, "image": B64}, errors.InvalidRequest, "id:"),
        ({"images": "nope"}, errors.InvalidRequest, "images: must be a list"),
        ({"images": []}, errors.BatchEmpty, "empty"),
        ({"images": [B64] * 5}, errors.BatchTooLarge, "limit is 4"),
        ({"images": [B64, {"id": "z", "image": "%%%"}]}, errors.InvalidBase64, "images[1].image"),
        ({"images": [B64, 3]}, errors.InvalidRequest, "images[1]."),
        ("just a string", errors.InvalidJSON, "content is not JSON"),
        (True, errors.InvalidRequest, "got bool"),
    ],
)
def test_errors_name_the_problem(doc, error, words):
    with pytest.raises(error) as info:
        parse(doc)
    assert words in info.value.message


def test_base64_tolerates_real_world_encodings_and_rejects_garbage():
    wrapped = base64.encodebytes(DATA * 20).decode()
    assert decode_base64(wrapped) == DATA * 20
    assert decode_base64(base64.urlsafe_b64encode(b"\xfb\xff" * 9).decode()) == b"\xfb\xff" * 9
    assert decode_base64(B64.rstrip("=")) == DATA
    assert decode_base64("data:image/jpeg;base64," + B64) == DATA
    for bad in ("abc$def", "A", "data:image/png;base64"):
        with pytest.raises(errors.InvalidBase64):
            decode_base64(bad)
