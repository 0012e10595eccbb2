"""One user-facing error type: the old names are it, with the same status, words and log treatment."""

from __future__ import annotations

import logging

import pytest
from tornado import web

from cern_spawner.binder.errors import BinderError, BinderRefused
from cern_spawner.binder.spawning import LaunchNotConfirmed, SpawnRefused
from cern_spawner.errors import Refused, UserFacingError
from cern_spawner.logsafe import did_you_mean, install_refusal_filter
from cern_spawner.options import OptionsRefused, check_user_options
from cern_spawner.web.failures import GrowthImpossible, SpawnFailed, StartTimedOut

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "error, status, refusal",
    [
        (OptionsRefused(400, "There is no profile 'x'."), 400, True),
        (BinderRefused(403, "Host 'evil.example' is not allowed."), 403, True),
        (SpawnRefused(502, "The registry did not answer."), 502, True),
        (LaunchNotConfirmed("Confirm the launch.", "<a>Confirm</a>"), 403, True),
        (GrowthImpossible("No GPU can be had now."), 503, False),
        (StartTimedOut("Your server did not start in time."), 504, False),
    ],
    ids=["options", "binder", "spawn", "launch-not-confirmed", "growth-impossible", "start-timed-out"],
)
def test_every_user_facing_error_is_one_type(error, status, refusal):
    assert isinstance(error, UserFacingError) and isinstance(error, web.HTTPError)
    assert isinstance(error, Refused) is refusal
    assert error.status == error.status_code == status
    # What JupyterHub shows ("Spawn failed: <message>") and what our handlers answer with.
    assert str(error) == error.message == error.log_message
    if not isinstance(error, LaunchNotConfirmed):  # shown as HTML instead
        assert error.jupyterhub_message == error.message


def test_old_names_still_catch_what_they_caught():
    assert SpawnRefused is Refused
    assert issubclass(BinderRefused, BinderError)  # binder code catches BinderError
    assert issubclass(SpawnFailed, UserFacingError) and not issubclass(SpawnFailed, Refused)


@pytest.mark.parametrize(
    "error, level",
    [
        (OptionsRefused(400, "There is no profile 'x'."), logging.WARNING),
        (BinderRefused(403, "Host 'evil.example' is not allowed."), logging.WARNING),
        (GrowthImpossible("No GPU can be had now."), logging.ERROR),
    ],
    ids=["options-refusal-warns", "binder-refusal-warns", "failure-stays-an-error"],
)
def test_refusals_are_logged_as_the_users_doing_failures_as_errors(error, level, caplog):
    logger = logging.getLogger(f"test-errors-{id(error)}")
    install_refusal_filter(logger, (Refused,))
    with caplog.at_level(logging.INFO, logger=logger.name):
        try:
            raise error
        except UserFacingError:
            logger.exception("Error starting server")
    (record,) = [r for r in caplog.records if r.name == logger.name]
    assert record.levelno == level
    assert (record.exc_info is None) is (level == logging.WARNING)


@pytest.mark.parametrize(
    "word, options, hint",
    [
        ("gpu1", ["gpu-1", "shared-2g"], "did you mean 'gpu-1'?"),
        ("zzz", ["gpu-1", "shared-2g"], ""),
        ("x", [], ""),
        (3, [1, 3], "did you mean '3'?"),  # YAML values need not be strings
    ],
    ids=["close", "nothing-close", "no-options", "non-strings"],
)
def test_one_did_you_mean(word, options, hint):
    assert did_you_mean(word, options) == hint


def test_refusals_use_the_same_hint_as_a_sentence():
    catalog_offered = [{"slug": "gpu-1"}, {"slug": "shared-2g"}]
    with pytest.raises(OptionsRefused) as refused:
        check_user_options({"profile": "gpu1"}, _Catalog(), catalog_offered)
    assert "Did you mean 'gpu-1'?" in refused.value.message


class _Catalog:
    def profile(self, slug):
        return None  # no such profile at all
