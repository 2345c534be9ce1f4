"""The dataset store: lookup order, checksum verification and clear errors."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from spillover.data.registry import FileInfo
from spillover.data.store import DatasetError, DataStore
from spillover.io import sha256_file

FIXTURES = Path(__file__).parent / "fixtures" / "data"

NAME = "xstest/xstest_prompts.csv"


def test_mirror_file_is_found_and_verified(data_dir, tmp_path):
    store = DataStore(data_dir, cache_dir=tmp_path / "cache", online=False)
    assert store.path(NAME) == data_dir / NAME


def test_cache_is_looked_in_before_the_mirror(data_dir, tmp_path):
    cache = tmp_path / "cache"
    (cache / NAME).parent.mkdir(parents=True)
    shutil.copyfile(data_dir / NAME, cache / NAME)
    assert DataStore(data_dir, cache_dir=cache, online=False).path(NAME) == cache / NAME


def test_corrupted_copy_fails_its_checksum(data_dir, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / NAME).parent.mkdir(parents=True)
    blob = (data_dir / NAME).read_bytes()
    (mirror / NAME).write_bytes(blob.replace(b"kill", b"kiss", 1))
    store = DataStore(mirror, cache_dir=tmp_path / "cache", online=False)
    with pytest.raises(DatasetError, match=r"xstest/xstest_prompts.csv: checksum mismatch for .*expected 11783fb2"):
        store.path(NAME)


def test_missing_file_error_names_places_and_url(tmp_path):
    store = DataStore(tmp_path / "mirror", cache_dir=tmp_path / "cache", online=False)
    with pytest.raises(DatasetError) as err:
        store.path(NAME)
    msg = str(err.value)
    assert NAME in msg and str(tmp_path / "cache") in msg and str(tmp_path / "mirror") in msg
    assert "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/" in msg


def test_env_variable_names_the_mirror(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SPILLOVER_DATA_DIR", str(data_dir))
    assert DataStore(cache_dir=tmp_path / "cache", online=False).path(NAME) == data_dir / NAME


def test_unregistered_file_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="not a registered dataset file"):
        DataStore(tmp_path, cache_dir=tmp_path, online=False).path("nope.csv")


def test_registry_matches_the_mirror_manifest(data_dir):
    from spillover.data.registry import FILES

    manifest = json.loads((data_dir / "MANIFEST.json").read_text())
    assert {e["file"]: (e["sha256"], e["rows"]) for e in manifest["files"]} == \
        {name: (info.sha256, info.rows) for name, info in FILES.items()}


@pytest.fixture()
def file_server():
    """Serves tests/fixtures/data over HTTP on localhost."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(FIXTURES))
    handler.log_message = lambda *a: None
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_download_goes_into_the_cache_and_is_verified(file_server, tmp_path, monkeypatch):
    monkeypatch.delenv("SPILLOVER_DATA_DIR", raising=False)  # no mirror: only the cache and the URL
    path = FIXTURES / NAME
    good = {NAME: FileInfo(file_server + NAME, sha256_file(path), 4)}
    store = DataStore(tmp_path / "no-mirror", cache_dir=tmp_path / "cache", online=True, files=good)
    assert store.path(NAME) == tmp_path / "cache" / NAME
    assert (tmp_path / "cache" / NAME).read_bytes() == path.read_bytes()
    bad = {NAME: FileInfo(file_server + NAME, "0" * 64, 4)}
    with pytest.raises(DatasetError, match="checksum mismatch"):
        DataStore(None, cache_dir=tmp_path / "cache2", online=True, files=bad).path(NAME)
    assert not (tmp_path / "cache2" / NAME).exists()
    gone = {NAME: FileInfo(file_server + "missing.csv", "0" * 64, 4)}
    with pytest.raises(DatasetError, match="download from .*missing.csv failed"):
        DataStore(None, cache_dir=tmp_path / "cache3", online=True, files=gone).path(NAME)
