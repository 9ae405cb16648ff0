import logging

import pytest

import medfair


def test_errors_share_base_class():
    for name in ["IOError", "FormatError", "ConfigError", "DataError", "ModelError", "EndpointError"]:
        assert issubclass(getattr(medfair, name), medfair.Error)
    assert issubclass(medfair.Error, RuntimeError)


def test_cpp_log_reaches_python_logging(caplog):
    with caplog.at_level(logging.INFO, logger="medfair"):
        medfair._core._log_for_test(logging.WARNING, "loader", "assumed ChatML")
    records = [r for r in caplog.records if r.name == "medfair"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == "[loader] assumed ChatML"
