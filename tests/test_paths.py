"""Tests of xmcgan_tf.paths."""

import os

from xmcgan_tf import paths


def test_relative_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.absolute("demo/text_encoder/encoder") == str(
        tmp_path / "demo" / "text_encoder" / "encoder")
    assert paths.absolute("../data") == os.path.join(os.path.dirname(str(tmp_path)), "data")
    assert paths.absolute("/models/encoder") == "/models/encoder"


def test_urls_remote_paths_and_empty_strings_are_kept():
    for path in ("https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3",
                 "gs://bucket/encoder", ""):
        assert paths.absolute(path) == path
