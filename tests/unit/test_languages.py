"""Language sets checked against the models a host has installed."""

import pytest

from common.languages import BUNDLED_LANGUAGES, UnsupportedLanguageError, check_language, installed_languages


def test_installed_models_are_read_from_the_tessdata_folder(tmp_path) -> None:
    for name in ("eng", "vie", "deu", "osd"):
        (tmp_path / f"{name}.traineddata").write_bytes(b"model")
    assert installed_languages(str(tmp_path)) == {"eng", "vie", "deu"}  # osd is not a language
    assert installed_languages(str(tmp_path / "missing")) == set()


def test_every_part_must_be_installed() -> None:
    available = {"eng", "vie", "deu"}
    assert check_language(" Vie+eng ", available) == "vie+eng"
    assert check_language("deu", available) == "deu"
    for bad in ("", "+", "fra", "eng+fra", "eng vie"):
        with pytest.raises(UnsupportedLanguageError):
            check_language(bad, available)
    with pytest.raises(UnsupportedLanguageError, match="have: eng, vie"):
        check_language("deu", BUNDLED_LANGUAGES)
