"""User input shown safely in messages and logs; refusals logged as one warning line."""

from __future__ import annotations

import io
import logging

import pytest
from tornado import web

from cern_spawner.binder.spawning import SpawnRefused
from cern_spawner.logsafe import install_refusal_filter, join_hub_log, shown
from cern_spawner.options import OptionsRefused, check_user_options

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("shared-2g", "'shared-2g'", id="plain"),
        pytest.param("a\nINFO forged line", "'a\\x0aINFO forged line'", id="newline"),
        pytest.param("a\0b\r", "'a\\x00b\\x0d'", id="nul-and-cr"),
        pytest.param("\x1b[31mred", "'\\x1b[31mred'", id="terminal-escape"),
        pytest.param("main\u202egnp.exe", "'main\\u202egnp.exe'", id="bidi-override"),
        pytest.param("ma\u200bin", "'ma\\u200bin'", id="zero-width"),
        pytest.param("\x85next", "'\\x85next'", id="c1-control"),
        pytest.param("it's", "'it\\'s'", id="quote"),
        pytest.param("grüße", "'grüße'", id="non-ascii-kept"),
        pytest.param(["x"], "'[\\'x\\']'", id="not-a-string"),
    ],
)
def test_shown_escapes_what_could_forge_or_hide(value, expected):
    assert shown(value) == expected


def test_shown_cuts_long_input():
    assert shown("x" * 500, limit=10) == "'xxxxxxxxxx…'"


@pytest.fixture
def hub_log():
    """A logger like JupyterHub's app log, writing to a string."""
    logger = logging.getLogger(f"test-logsafe-{id(object())}")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    install_refusal_filter(logger, (SpawnRefused, OptionsRefused))
    install_refusal_filter(logger, (SpawnRefused, OptionsRefused))  # twice: still one filter
    yield logger, stream
    logger.removeHandler(handler)


def refusal_of(options) -> OptionsRefused:
    with pytest.raises(OptionsRefused) as caught:
        check_user_options(options, catalog=None, offered=[{"slug": "shared-2g"}])
    return caught.value


def test_a_refusal_logged_with_its_traceback_becomes_one_warning_line(hub_log):
    logger, stream = hub_log
    refused = refusal_of({"profile": "shared-2g", "x\nERROR forged": "1"})
    try:
        raise SpawnRefused(refused.status, refused.message) from None
    except SpawnRefused:
        # What JupyterHub's spawn form handler does with any exception.
        logger.error("Failed to spawn single-user server with form", exc_info=True)
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert text.startswith("WARNING Refused: Failed to spawn single-user server with form: ")
    assert "Traceback" not in text
    assert "'x\\x0aERROR forged'" in text


def test_a_refusal_logged_without_exc_info_is_found_while_it_is_handled(hub_log):
    logger, stream = hub_log
    try:
        raise SpawnRefused(403, "Profile 'gpu-1' is only available to users with the role: gpu-users.")
    except web.HTTPError as e:
        # What JupyterHub's User.spawn does with an HTTPError.
        logger.error(f"Error starting bob's server: {e}")
    assert stream.getvalue().startswith("WARNING Refused: Error starting bob's server: Profile 'gpu-1'")


@pytest.mark.parametrize(
    "error",
    [pytest.param(RuntimeError("boom"), id="other-exception"), pytest.param(None, id="no-exception")],
)
def test_other_errors_keep_their_level_and_traceback(hub_log, error):
    logger, stream = hub_log
    if error is None:
        logger.error("Something broke")
    else:
        try:
            raise error
        except RuntimeError:
            logger.error("Unhandled error starting bob's server", exc_info=True)
    text = stream.getvalue()
    assert text.startswith("ERROR ")
    assert ("Traceback" in text) is (error is not None)


def test_the_spawn_pages_second_line_about_a_refusal_is_a_warning_too(hub_log):
    logger, stream = hub_log
    refusal = SpawnRefused(400, "There is no profile 'x'.")
    try:
        raise refusal
    except web.HTTPError as e:
        logger.error(f"Error starting bob's server: {e}")
    # JupyterHub's spawn page, outside any except block, with the finished spawn's exception.
    logger.error(f"Error starting server bob: {refusal}")
    logger.error("Error starting server bob: the pod was evicted")
    levels = [line.split(" ", 1)[0] for line in stream.getvalue().splitlines()]
    assert levels == ["WARNING", "WARNING", "ERROR"]


def test_our_module_loggers_write_to_the_hub_log(hub_log):
    logger, stream = hub_log
    name = f"cern-test-{id(stream)}"
    join_hub_log(logger, name)
    join_hub_log(logger, name)  # twice: one line per record still
    logging.getLogger(f"{name}.binder.resolve").warning("git said %r", "no\nsuch ref")
    assert stream.getvalue() == "WARNING git said 'no\\nsuch ref'\n"
