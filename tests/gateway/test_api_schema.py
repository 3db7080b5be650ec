"""The running REST API against its own OpenAPI document, with schemathesis (every check: no server error,
documented status codes, content types, headers and response schemas, schema-valid data accepted, invalid data
rejected, authentication enforced, 405 with Allow for undocumented methods, stateful sequences).

The document is fetched from the gateway itself (GET /api/openapi.json on 127.0.0.1). Runs are deterministic and
bounded (a few hundred requests each): the security cell with an API token, the local administrator of centre A
with an API token, POD MI's uploader with the API token the security cell issued it (its catalogue and receipts),
and the session endpoints (login, tokens) with a session token -- API tokens skip
DELETE /tokens/{token_id}, which could revoke the very token the run authenticates with.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import CENTRE_A
from tests.gateway.test_api import api_token, archive_document, call, login, start_api_gateway

#: a grant's end date in the past is refused (400) although the document cannot say "not in the past"
CONFIG = """
[[operations]]
include-path = "/institutions/{id}/access/{account}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = start_api_gateway(tmp_path_factory.mktemp("schema"))
    # something behind the documented example id (centre A): contacts, an archived document
    g.admin.set_contacts(CENTRE_A, ["secretariaat@ocmw-aalst.test"], "nl")
    archive_document(g, CENTRE_A, "2026-11/maandstaat.pdf", "schema")
    yield g
    g.stop()
    g.services.close()


def schemathesis(gw, tmp_path, token: str, *extra: str) -> str:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config), "run",
           f"https://127.0.0.1:{gw.dav_port}/api/openapi.json", "--tls-verify", "false",
           "-H", f"Authorization: Bearer {token}", "--checks", "all", "--max-examples", "5",
           "--generation-deterministic",
           # one worker: hypothesis' lambda descriptions parse source with ast, which is not thread-safe on 3.11
           "--workers", "1", "--request-timeout", "30", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 100, output[-3000:]
    print(re.search(r"\d+ generated.*", output).group(0))  # shown with pytest -rP
    return output


def test_security_cell_with_an_api_token(gw, tmp_path):
    _, token = api_token(gw, login(gw, "cell"), "schemathesis")
    schemathesis(gw, tmp_path, token, "--exclude-path", "/tokens/{token_id}")
    assert call(gw.dav_port, "GET", "/me", token=token).status == 200


def test_local_administrator_with_an_api_token(gw, tmp_path):
    _, token = api_token(gw, login(gw, "admin-a"), "schemathesis")
    schemathesis(gw, tmp_path, token, "--exclude-path", "/tokens/{token_id}")
    assert call(gw.dav_port, "GET", "/me", token=token).status == 200


def test_uploader_with_an_api_token_from_the_security_cell(gw, tmp_path):
    """POD MI's uploader reads the catalogue and receipts of what it sent (it delivered document 1) -- in an active
    centre: the runs before may have suspended centre A (the documented example id)."""
    if gw.admin.centre(CENTRE_A).status != "active":
        gw.admin.set_status(CENTRE_A, "active", "schemathesis: the uploader's run")
    a = call(gw.dav_port, "POST", "/uploaders/podmi/tokens", {"label": "schemathesis"}, token=login(gw, "cell"))
    assert a.status == 201, a.raw
    token = a.json["token"]
    schemathesis(gw, tmp_path, token, "--include-path-regex", "^/(me|institutions/{id}/documents.*)$")
    assert call(gw.dav_port, "GET", f"/institutions/{CENTRE_A}/documents/1/receipt", token=token).status == 200


def test_session_and_token_endpoints_with_a_session(gw, tmp_path):
    session = login(gw, "staff-a")
    schemathesis(gw, tmp_path, session, "--include-path-regex", "^/(session|tokens|me)")
    # the run included DELETE /session with this session: a logout, which ends it
    assert call(gw.dav_port, "GET", "/me", token=session).status == 401
    assert call(gw.dav_port, "GET", "/me", token=login(gw, "staff-a")).status == 200
