"""The canary search (tests/canary.py) finds a secret in every encoding it lists, wherever the
secret sits inside a longer encoded blob, and nothing where it is not."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from canary import ENCODINGS, files, leaks

SECRET = b"canary-7f3a-0123456789abcdef"


@pytest.mark.parametrize("offset", range(6))
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("base64", base64.b64encode),
        ("base64url", base64.urlsafe_b64encode),
        ("hex", lambda data: data.hex().encode()),
    ],
)
def test_an_encoded_secret_is_found_at_any_offset(encoding: str, encode, offset: int) -> None:
    blob = encode(b"user=admin;x"[:offset] + SECRET + b";tail~~")
    text = b'{"data": {"creds": "' + blob + b'"}}'
    assert f"{encoding} of secret 0 in a log" in leaks([SECRET], {"a log": text})


def test_a_secret_inside_json_encoded_whole_is_found() -> None:
    document = json.dumps({"credentials": {"token": SECRET.decode()}}).encode()
    for encoded in (base64.b64encode(document), base64.urlsafe_b64encode(document)):
        assert leaks([SECRET], {"state": encoded}), encoded


def test_nothing_is_found_where_the_secret_is_not() -> None:
    other = b"canary-7f3a-fedcba9876543210"
    places = {name: b"".join(f(other)) for name, f in ENCODINGS.items()}
    assert leaks([SECRET], places) == []
    assert leaks([SECRET], {"plain": b"a *** b"}) == []


def test_files_reads_every_regular_file_below(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.cfg").write_bytes(base64.b64encode(SECRET))
    (tmp_path / "state.json").write_text("{}")
    found = files(tmp_path)
    assert set(found) == {
        f"file {tmp_path / 'conf.d' / 'a.cfg'}",
        f"file {tmp_path / 'state.json'}",
    }
    assert f"base64 of secret 0 in file {tmp_path / 'conf.d' / 'a.cfg'}" in leaks([SECRET], found)
    assert not [leak for leak in leaks([SECRET], found) if "state.json" in leak]
