"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def offline_text_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Builds the offline text encoder once per test process; returns DIR (preprocess/, encoder/)."""
    from data_tools import build_text_encoder

    output_dir = tmp_path_factory.mktemp("text_encoder")
    build_text_encoder.build_text_encoder(str(output_dir))
    return str(output_dir)
