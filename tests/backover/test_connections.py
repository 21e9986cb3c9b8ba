"""``DatabaseUri.client``: Back Over's client defaults yield to what the user's URI says."""

from __future__ import annotations

import pytest

from backover.connections import DatabaseUri


@pytest.mark.parametrize(
    ("uri", "seconds", "appname"),
    [
        pytest.param("mongodb://127.0.0.1:1/?directConnection=true", 10.0, "backover", id="defaults"),
        pytest.param(
            "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", 0.3, "backover", id="uri-timeout"
        ),
        pytest.param(
            "mongodb://u:p%3Fq@127.0.0.1:1/?SERVERSELECTIONTIMEOUTMS=1500&appName=orders-etl",
            1.5,
            "orders-etl",
            id="uri-options-any-case",
        ),
    ],
)
def test_the_uris_own_options_win_over_the_defaults(uri: str, seconds: float, appname: str) -> None:
    client = DatabaseUri(uri).client()
    try:
        assert client.options.server_selection_timeout == seconds
        assert client.options.pool_options.metadata["application"]["name"] == appname
    finally:
        client.close()


def test_an_explicit_option_of_the_caller_still_wins() -> None:
    client = DatabaseUri("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300").client(
        serverSelectionTimeoutMS=2000
    )
    try:
        assert client.options.server_selection_timeout == 2.0
    finally:
        client.close()


def test_documentdb_never_retries_writes() -> None:
    client = DatabaseUri("mongodb://127.0.0.1:1/", documentdb=True).client()
    try:
        assert client.options.retry_writes is False
    finally:
        client.close()
