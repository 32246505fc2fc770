"""Log formats (AUTHSVC_LOG_FORMAT): JSON objects one per line, or text lines no value can break."""

import io
import json
import logging

import pytest

from authsvc import logs
from authsvc.config import Settings
from authsvc.errors import ConfigError
from authsvc.events import security_event


@pytest.fixture
def output():
    """What the root handler ``logs.configure`` installs writes; removed afterwards."""
    stream = io.StringIO()
    installed = []

    def configure(log_format):
        installed.append(logs.configure(log_format, stream))
        return stream

    yield configure
    for handler in installed:
        logging.getLogger().removeHandler(handler)


def test_json_gives_one_object_per_line_with_event_fields_at_the_top(output):
    stream = output("json")
    token = logs.current_request_id.set("lb-1")
    try:
        security_event("client.deleted", client_id="c_1\nforged line", sub=None)
    finally:
        logs.current_request_id.reset(token)
    logging.getLogger("authsvc.test").warning("café\r\n%s", "done")

    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["event"] == "client.deleted" and first["client_id"] == "c_1\nforged line"
    assert first["logger"] == "authsvc.security" and first["level"] == "INFO" and first["request_id"] == "lb-1"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "café\r\ndone" and "request_id" not in second


def test_text_lines_escape_control_characters_and_end_with_the_request_id(output):
    stream = output("text")
    token = logs.current_request_id.set("lb-2")
    try:
        logging.getLogger("authsvc.test").warning("user typed %s", "x\r\n[ERROR] forged\x1b[2J\u2028")
    finally:
        logs.current_request_id.reset(token)
    [line] = stream.getvalue().splitlines()
    assert line.endswith("authsvc.test: user typed x\\x0d\\x0a[ERROR] forged\\x1b[2J\\u2028 request_id=lb-2")
    assert "[WARNING]" in line


def test_configuring_again_replaces_the_handler(output):
    output("json")
    stream = output("text")
    logging.getLogger("authsvc.test").warning("once")
    assert stream.getvalue().count("once") == 1
    assert not stream.getvalue().startswith("{")


def test_the_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"AUTHSVC_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="AUTHSVC_LOG_FORMAT"):
        Settings.from_env({"AUTHSVC_LOG_FORMAT": "xml"})
    assert logs.log_format_from_env({"AUTHSVC_LOG_FORMAT": "xml"}) == "text"
