"""Standby windows: which GPUs to keep free at a moment, in local wall-clock time, DST included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cern_spawner.scaling.standby import Standby, next_change, parse, parse_days, standby_gpus

pytestmark = pytest.mark.unit
OFFICE = parse(
    {"gpus": 4, "timezone": "Europe/Zurich", "windows": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}]}
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        pytest.param("mon-fri", {0, 1, 2, 3, 4}, id="range"),
        pytest.param("sat,sun", {5, 6}, id="list"),
        pytest.param("mon-wed, fri", {0, 1, 2, 4}, id="range-and-day"),
        pytest.param("Daily", set(range(7)), id="daily"),
    ],
)
def test_parse_days(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize(
    ("window", "message"),
    [
        pytest.param({"days": "mon-fry", "from": "08:00", "to": "18:00"}, "unknown days 'mon-fry'", id="day"),
        pytest.param({"days": "fri-mon", "from": "08:00", "to": "18:00"}, "goes backwards", id="backwards"),
        pytest.param({"days": "mon", "from": "8:00", "to": "18:00"}, "'8:00' is not HH:MM", id="format"),
        pytest.param(
            {"days": "mon", "from": "08:00", "to": "25:00"}, "not between 00:00 and 24:00", id="hour"
        ),
        pytest.param(
            {"days": "mon", "from": "18:00", "to": "08:00"}, "across midnight in two", id="overnight"
        ),
    ],
)
def test_bad_windows_are_refused_with_the_part_named(window, message):
    with pytest.raises(ValueError, match=message):
        parse({"gpus": 1, "windows": [window]})


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Geneva'"):
        parse(
            {
                "gpus": 1,
                "timezone": "Europe/Geneva",
                "windows": [{"days": "mon", "from": "08:00", "to": "09:00"}],
            }
        )


# Zurich is UTC+1 in winter (CET), UTC+2 in summer (CEST); 2026 changes on 29 March and 25 October.
@pytest.mark.parametrize(
    ("now", "gpus"),
    [
        pytest.param("2026-12-07 06:59", 0, id="monday-winter-07:59-before"),
        pytest.param("2026-12-07 07:00", 4, id="monday-winter-08:00-opens"),
        pytest.param("2026-12-07 16:59", 4, id="monday-winter-17:59-still-open"),
        pytest.param("2026-12-07 17:00", 0, id="monday-winter-18:00-closed"),
        pytest.param("2026-12-05 10:00", 0, id="saturday-closed"),
        pytest.param("2026-07-06 06:00", 4, id="monday-summer-08:00-opens"),
        pytest.param("2026-07-06 05:59", 0, id="monday-summer-07:59-before"),
        pytest.param("2026-07-06 16:00", 0, id="monday-summer-18:00-closed"),
        # The Monday after the spring change: 08:00 CEST is 06:00 UTC, no longer 07:00.
        pytest.param("2026-03-30 06:00", 4, id="after-spring-change-08:00-local"),
        pytest.param("2026-03-27 06:00", 0, id="before-spring-change-07:00-local"),
        pytest.param("2026-10-26 07:00", 4, id="after-autumn-change-08:00-local"),
        pytest.param("2026-10-23 06:00", 4, id="before-autumn-change-06:00-utc-is-08:00"),
        pytest.param("2026-10-26 06:00", 0, id="after-autumn-change-06:00-utc-is-07:00"),
    ],
)
def test_office_hours_in_zurich(now, gpus):
    assert standby_gpus(OFFICE, utc(now)) == gpus


DAILY = parse(
    {"gpus": 2, "timezone": "Europe/Zurich", "windows": [{"days": "daily", "from": "01:00", "to": "03:30"}]}
)


@pytest.mark.parametrize(
    ("now", "gpus"),
    [
        # 29 March 2026: at 01:00 UTC (02:00 CET) clocks jump to 03:00 CEST; the window is 2.5 h of
        # wall-clock time but 1.5 h long that night.
        pytest.param("2026-03-29 00:00", 2, id="spring-01:00-cet-open"),
        pytest.param("2026-03-29 01:00", 2, id="spring-03:00-cest-open"),
        pytest.param("2026-03-29 01:30", 0, id="spring-03:30-cest-closed"),
        # 25 October 2026: at 01:00 UTC (03:00 CEST) clocks go back to 02:00 CET.
        pytest.param("2026-10-25 01:15", 2, id="autumn-02:15-cet-second-time-open"),
        pytest.param("2026-10-25 02:30", 0, id="autumn-03:30-cet-closed"),
    ],
)
def test_dst_change_days(now, gpus):
    assert standby_gpus(DAILY, utc(now)) == gpus


@pytest.mark.parametrize(
    ("now", "change"),
    [
        pytest.param("2026-12-07 06:00", "2026-12-07 07:00", id="next-start"),
        pytest.param("2026-12-07 07:00", "2026-12-07 17:00", id="next-end-at-an-edge"),
        pytest.param("2026-12-04 17:00", "2026-12-07 07:00", id="friday-evening-to-monday"),
        pytest.param("2026-03-27 17:00", "2026-03-30 06:00", id="over-the-spring-change"),
    ],
)
def test_next_change(now, change):
    assert next_change(OFFICE, utc(now)) == utc(change)


def test_no_standby_keeps_nothing_and_wakes_no_one():
    assert parse(None) is None and parse({"gpus": 0, "windows": []}) is None
    assert standby_gpus(None, utc("2026-12-07 10:00")) == 0
    assert next_change(None, utc("2026-12-07 10:00")) is None
    assert next_change(Standby(1, "UTC", ()), utc("2026-12-07 10:00")) is None
