from common.filenames import MAX_FILENAME_BYTES, display_filename, encoded_prefix, safe_filename


def test_path_parts_are_dropped() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\bob\\scan.png") == "scan.png"


def test_unicode_is_kept_and_normalised() -> None:
    # "Tiếng Việt" typed with combining marks comes out NFC.
    assert safe_filename("Tie\u0302\u0301ng Vie\u0323\u0302t.png") == "Tiếng Việt.png"


def test_control_characters_and_risky_punctuation_go() -> None:
    assert safe_filename("a\x00b\r\nc\u202e.png") == "abc.png"
    assert safe_filename('x<y>:"|?*.pdf') == "x_y______.pdf"


def test_empty_or_dot_names_fall_back() -> None:
    assert safe_filename("") == "upload"
    assert safe_filename(None) == "upload"
    assert safe_filename("..") == "upload"
    assert safe_filename("/") == "upload"


def test_long_names_are_capped_in_bytes_keeping_the_extension() -> None:
    name = "ệ" * 300 + ".tiff"  # three UTF-8 bytes each
    safe = safe_filename(name)
    assert len(safe.encode()) <= MAX_FILENAME_BYTES
    assert safe.endswith(".tiff")
    # Whole characters only, as many as fit: 255 - len(".tiff") = 250 bytes hold 83 of them.
    assert safe == "ệ" * 83 + ".tiff"


def test_a_cut_never_splits_a_character() -> None:
    for width in range(1, 12):
        for text in ("aệb", "日本語テキスト", "😀x😀"):
            prefix = encoded_prefix(text * 3, width)
            assert (text * 3).startswith(prefix)
            assert len(prefix.encode()) <= width
            following = (text * 3)[len(prefix)]
            assert len((prefix + following).encode()) > width  # the next character would not fit


def test_display_name_keeps_the_original_but_no_control_characters() -> None:
    assert display_filename("dir/My scan\x07.png") == "dir/My scan.png"
