"""The sample nginx configuration of docs/reliability.md, as tests/support/nginx.py
uses it: the upstream addresses and the ``listen`` line are replaced, everything
else is the documented text, and nginx accepts the result (``nginx -t``). The e2e
test tests/e2e/test_ha_nginx.py runs orchestrators behind it."""

from __future__ import annotations

from nginx import Nginx, rivet_conf, sample


def test_the_sample_keeps_its_settings_with_our_addresses() -> None:
    conf = rivet_conf(["127.0.0.1:1001", "127.0.0.1:1002"], "127.0.0.1:2000")
    doc = sample()
    assert "server 10.0.0.11:8420" in doc and "listen 80;" in doc
    assert "server 127.0.0.1:1001 max_fails=1 fail_timeout=5s;" in conf
    assert "server 127.0.0.1:1002 max_fails=1 fail_timeout=5s;" in conf
    assert "10.0.0." not in conf and "listen 127.0.0.1:2000;" in conf
    for setting in ("proxy_buffering off;", "proxy_http_version 1.1;", "keepalive 32;"):
        assert setting in conf
    # Only the addresses and the listen line changed.
    assert conf.count("\n") == doc.count("\n") - 1


def test_nginx_accepts_the_configuration() -> None:
    # RuntimeError when nginx is missing: scripts/setup.sh installs it.
    nginx = Nginx(["127.0.0.1:1001"])
    try:
        nginx.check()
    finally:
        nginx.stop()
