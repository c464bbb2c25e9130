"""Whatever a client sends, the command API answers with a deliberate status and a JSON body:
never a 500 (property test with hypothesis against the real store)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.settings import DatabaseSettings
from tests.support.system import auth, command_client, register_and_login, store_for

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "email": json_values | st.emails(),
            "password": json_values,
            "title": json_values,
            "done": json_values,
        },
    ),
)
paths = st.sampled_from(
    ["/auth/register", "/auth/login", "/tasks", "/tasks/{own}", "/tasks/{random}", "/tasks/x"]
)
methods = st.sampled_from(["POST", "PATCH", "DELETE", "GET", "PUT"])
if_match = (
    st.none()
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
    | st.integers(-2, 5).map(str)
)


def test_no_request_produces_a_server_error(db_settings: DatabaseSettings) -> None:
    with store_for(db_settings) as store, command_client(store, db_settings) as client:
        token = register_and_login(client, "fuzz@example.com")
        own = client.post("/tasks", json={"title": "mine"}, headers=auth(token)).json()["id"]

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(method=methods, path=paths, body=bodies, match=if_match, authed=st.booleans())
        def check(method: str, path: str, body: Any, match: str | None, authed: bool) -> None:
            headers = auth(token) if authed else {}
            if match is not None:
                headers["If-Match"] = match
            url = path.format(own=own, random="6f1c1f4e-2f7a-4c55-9a55-3f1f6c1c0b7e")
            response = client.request(method, url, json=body, headers=headers)
            assert response.status_code < 500, (method, url, body, response.text)
            if response.status_code != 204:
                assert isinstance(response.json(), dict)

        check()
