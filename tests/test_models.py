
import pytest
import torch

from spillover import models
from spillover.models import EmbeddedModel, ModelLoadError, assemble_gguf, embedded_model_dir, pick_dtype


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Two importable packages holding one part each (the layout of the PyPI model packages)."""
    for i, payload in ((1, b"GGUF-first-half|"), (2, b"second-half")):
        pkg = tmp_path / f"fakeparts_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _model(sha: str) -> EmbeddedModel:
    return EmbeddedModel("fake", (("fakeparts_1", "data/part01.bin"), ("fakeparts_2", "data/part02.bin")), sha, "fake==1")


def test_assemble_verifies_checksum(fake_parts, tmp_path):
    import hashlib

    good = hashlib.sha256(b"GGUF-first-half|second-half").hexdigest()
    out = assemble_gguf(_model(good), tmp_path / "out" / "m.gguf")
    assert out.read_bytes() == b"GGUF-first-half|second-half"
    with pytest.raises(ModelLoadError, match="sha256 of the assembled GGUF"):
        assemble_gguf(_model("0" * 64), tmp_path / "out2" / "m.gguf")
    assert not (tmp_path / "out2" / "m.gguf").exists() and not list((tmp_path / "out2").glob("*.partial"))


def test_missing_part_and_package_are_named(fake_parts, tmp_path):
    (fake_parts / "fakeparts_2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelLoadError, match="part02.bin is missing"):
        assemble_gguf(_model("0" * 64), tmp_path / "m.gguf")
    absent = EmbeddedModel("absent", (("no_such_pkg_xyz", "data/part01.bin"),), "0" * 64, "no-such-pkg==1")
    with pytest.raises(ModelLoadError, match="no_such_pkg_xyz.*not installed.*no-such-pkg==1"):
        assemble_gguf(absent, tmp_path / "m2.gguf")


def test_unknown_alias():
    with pytest.raises(ModelLoadError, match="unknown embedded model.*known: embedded:qwen2.5-coder-0.5b-instruct"):
        embedded_model_dir("embedded:gpt-17")


def test_dtype_choice():
    assert pick_dtype(torch.device("cpu"), "fp32") == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16
    expected = torch.bfloat16 if models.cpu_supports_bf16() else torch.float32
    assert pick_dtype(torch.device("cpu")) == expected


def test_local_dir_loads_with_chat_template(tiny_model_dir):
    model, tok = models.load_model(str(tiny_model_dir), dtype="fp32")
    assert tok.chat_template and tok.pad_token is not None and not model.training


def test_the_lm_head_gets_a_contiguous_input_in_generation(tiny_model_dir):
    """Generation feeds the head a (B, 1, D) view; on a CPU load_model makes it contiguous (torch's
    linear would otherwise multiply a frozen weight through a (B, D, V) copy of it)."""
    model, _ = models.load_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    model.requires_grad_(False)
    seen = []
    model.get_output_embeddings().register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    ids = torch.randint(0, model.config.vocab_size, (3, 7))
    with torch.inference_mode():
        last = model(input_ids=ids, logits_to_keep=1).logits
        full = model(input_ids=ids).logits
    assert seen == [True, True]
    torch.testing.assert_close(last[:, 0], full[:, -1], rtol=0, atol=0)


def test_gguf_dir_is_used_and_checked(tmp_path, monkeypatch):
    """SPILLOVER_GGUF_DIR's ``<alias>.gguf`` replaces the packages; a wrong checksum is refused."""
    import hashlib

    payload = b"GGUF-whole-file"
    (tmp_path / "fake.gguf").write_bytes(payload)
    monkeypatch.setenv("SPILLOVER_GGUF_DIR", str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    got = models._gguf_file(_model(hashlib.sha256(payload).hexdigest()), work)
    assert got.read_bytes() == payload and got.parent == work
    with pytest.raises(ModelLoadError, match="sha256 of .*fake.gguf"):
        models._gguf_file(_model("0" * 64), tmp_path / "work2")
    monkeypatch.setenv("SPILLOVER_GGUF_DIR", str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="fakeparts_1.*not installed"):
        models._gguf_file(_model("0" * 64), tmp_path / "work3")


def test_embedded_gguf_is_assembled_once_into_the_cache(fake_parts, tmp_path, monkeypatch):
    """The GGUF llama.cpp reads: the SPILLOVER_GGUF_DIR file when there is one, else assembled once."""
    import hashlib

    payload = b"GGUF-first-half|second-half"
    fake = _model(hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(models.EMBEDDED, "fake", fake)
    monkeypatch.setenv("SPILLOVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPILLOVER_GGUF_DIR", raising=False)
    path = models.embedded_gguf("embedded:fake")
    assert path.read_bytes() == payload and path.parent == tmp_path / "cache" / "gguf"
    (fake_parts / "fakeparts_1" / "data" / "part01.bin").unlink()
    assert models.embedded_gguf("embedded:fake") == path  # reused, not reassembled
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "fake.gguf").write_bytes(payload)
    monkeypatch.setenv("SPILLOVER_GGUF_DIR", str(tmp_path / "given"))
    assert models.embedded_gguf("embedded:fake") == tmp_path / "given" / "fake.gguf"
    with pytest.raises(ModelLoadError, match="unknown embedded model"):
        models.embedded_gguf("embedded:nope")
