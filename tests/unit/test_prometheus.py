"""The Prometheus text writer both services use."""

from common import prometheus


def test_samples_keep_large_counters_exact_and_escape_labels() -> None:
    assert prometheus.sample("jobs_total", {}, 12_345_678) == "jobs_total 12345678"
    assert prometheus.sample("seconds_sum", {}, 0.25) == "seconds_sum 0.25"
    line = prometheus.sample("x", {"path": 'a"b\\c\nd'}, 1)
    assert line == 'x{path="a\\"b\\\\c\\nd"} 1'


def test_a_family_has_help_and_type_first() -> None:
    text = prometheus.render([prometheus.family("up", "gauge", "Is it up.", [({}, 1)])])
    assert text == "# HELP up Is it up.\n# TYPE up gauge\nup 1\n"
