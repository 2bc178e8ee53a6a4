from __future__ import annotations

import pytest

from api.graphql_http import GRAPHQL_RESPONSE, JSON, negotiate


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, JSON),
        ("", JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json", JSON),
        ("*/*", JSON),
        ("text/html", None),
    ],
)
def test_negotiate(accept, media):
    assert negotiate(accept) == media
