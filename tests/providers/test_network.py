"""Per-provider network settings: ``proxy``, ``ca_bundle``, ``client_cert``/``client_key``, ``max_connections``.

TLS is real: a CA, a server and a client certificate are made with the ``openssl`` command, and
`FakeServer` serves HTTPS with them.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client, ConfigError
from turnout.testing import FakeServer, Reply

from ..conftest import Runner

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass(frozen=True)
class PKI:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=cwd)  # fmt: skip


def _signed(name: str, ca: str, cwd: Path, extensions: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    cwd = tmp_path_factory.mktemp("pki")
    _ca("ca", cwd)
    _ca("other-ca", cwd)
    _signed("server", "ca", cwd, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed("client", "ca", cwd, "extendedKeyUsage=clientAuth\n")
    return PKI(
        cwd / "ca.pem",
        cwd / "other-ca.pem",
        cwd / "server.pem",
        cwd / "server.key",
        cwd / "client.pem",
        cwd / "client.key",
    )


def _server_context(pki: PKI, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@pytest.fixture
def tls_server(pki: PKI) -> Iterator[FakeServer]:
    with FakeServer(ssl_context=_server_context(pki)) as server:
        yield server


def _config(server: FakeServer, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai-compatible", "base_url": server.base_url, **provider}},
        "prices": {"p:gpt-4o-mini": {"input_per_million": 1, "output_per_million": 1}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


# -- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_ca_bundle_trusts_a_private_ca(runner: Runner, tls_server: FakeServer, pki: PKI, streamed: bool) -> None:
    assert tls_server.base_url.startswith("https://127.0.0.1:")
    reply = runner.call(streamed, _config(tls_server, ca_bundle=str(pki.ca)), "p:gpt-4o-mini", "hello")
    assert reply.text == "hello" and len(tls_server.chat_requests) == 1


@pytest.mark.parametrize("ca", ["other", "system"])
def test_an_untrusted_server_fails_naming_the_certificate_problem(
    runner: Runner, tls_server: FakeServer, pki: PKI, ca: str
) -> None:
    settings = {"ca_bundle": str(pki.other_ca)} if ca == "other" else {}
    with pytest.raises(turnout.APIConnectionError, match="CERTIFICATE_VERIFY_FAILED") as info:
        runner.chat(_config(tls_server, **settings), "p:gpt-4o-mini", "hello")
    assert not isinstance(info.value, turnout.APITimeoutError) and info.value.provider == "p"
    assert tls_server.chat_requests == []


def test_ssl_cert_file_is_trusted_as_it_is_when_a_pool_is_made(
    runner: Runner, tls_server: FakeServer, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without ca_bundle, httpx2's default trust applies, which $SSL_CERT_FILE replaces; the shared
    # default context is kept per value, so a later pool trusts what the variable names then
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    assert runner.chat(_config(tls_server), "p:gpt-4o-mini", "hello").text == "hello"
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca))
    with pytest.raises(turnout.APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        runner.chat(_config(tls_server), "p:gpt-4o-mini", "hello")
    assert len(tls_server.chat_requests) == 1


def test_every_pool_shares_one_default_tls_context(
    tls_server: FakeServer, pki: PKI, monkeypatch: pytest.MonkeyPatch, tls_contexts_made: list[ssl.SSLContext]
) -> None:
    # httpx2 builds a TLS context, reading the CA bundle (about 0.8 MiB), for each client it makes;
    # turnout makes a pool per client, provider and event loop, and they share one context
    made = tls_contexts_made
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    config = _config(tls_server)

    async def call_async() -> str:
        async with AsyncClient(config=config) as client:
            return (await client.chat("p:gpt-4o-mini", "hi")).text

    with Client(config=config) as first, Client(config=config) as second:
        assert first.chat("p:gpt-4o-mini", "hi").text == second.chat("p:gpt-4o-mini", "hi").text == "hi"
        with first.stream("p:gpt-4o-mini", "hi") as chunks:
            assert "".join(c.text or "" for c in chunks) == "hi"
    assert asyncio.run(call_async()) == asyncio.run(call_async()) == "hi"  # a pool per event loop
    assert len(made) == 1 and len(tls_server.chat_requests) == 5


def test_verification_cannot_be_turned_off(tls_server: FakeServer) -> None:
    for key in ("verify", "ssl_verify", "insecure"):
        with pytest.raises(ConfigError, match=f"providers.p.{key}: unknown key"):
            Client(config=_config(tls_server, **{key: False}))


def test_client_certificate_for_mutual_tls(runner: Runner, pki: PKI) -> None:
    with FakeServer(ssl_context=_server_context(pki, require_client_cert=True)) as server:
        with pytest.raises(turnout.APIConnectionError):  # no client certificate: the server refuses
            runner.chat(_config(server, ca_bundle=str(pki.ca)), "p:gpt-4o-mini", "hi")
        config = _config(
            server, ca_bundle=str(pki.ca), client_cert=str(pki.client_cert), client_key=str(pki.client_key)
        )
        assert runner.chat(config, "p:gpt-4o-mini", "hi").text == "hi"


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"ca_bundle": "/nonexistent/ca.pem"}, "providers.p.ca_bundle: no such file: '/nonexistent/ca.pem'"),
        ({"client_key": __file__}, "client_key: set client_cert too"),
        ({"proxy": "ftp://proxy:21"}, "providers.p.proxy: must start with http://"),
        ({"max_connections": 0}, "providers.p.max_connections: Input should be greater than 0"),
    ],
)
def test_bad_settings_fail_at_load(tls_server: FakeServer, settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        Client(config=_config(tls_server, **settings))


def test_a_file_that_is_not_a_certificate_is_a_config_error(tls_server: FakeServer, tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with Client(config=_config(tls_server, ca_bundle=str(bogus))) as client:
        with pytest.raises(ConfigError, match="providers.p.ca_bundle: cannot be used for TLS"):
            client.chat("p:gpt-4o-mini", "hi")
    assert tls_server.chat_requests == []


def test_huggingface_refuses_network_keys(tls_server: FakeServer, pki: PKI) -> None:
    config = {"providers": {"hf": {"type": "huggingface", "base_url": tls_server.url, "ca_bundle": str(pki.ca)}}}
    with pytest.raises(ConfigError, match="ca_bundle: not supported by type 'huggingface'.*SSL_CERT_FILE"):
        Client(config=config)


# -- proxy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_proxy_carries_the_requests(runner: Runner, streamed: bool) -> None:
    # The fake answers absolute-form requests (RFC 9112 §3.2.2), as a forward proxy receives them:
    # a base_url whose host cannot resolve is reached only through the proxy.
    with FakeServer() as proxy:
        config = {
            "providers": {
                "p": {"type": "openai-compatible", "base_url": "http://api.turnout-test.invalid/v1", "proxy": proxy.url}
            },  # fmt: skip
            "defaults": {"retry": {"max_attempts": 1}},
        }
        with pytest.warns(turnout.CostUnknownWarning):
            reply = runner.call(streamed, config, "p:gpt-4o-mini", "via the proxy")
        [sent] = proxy.chat_requests
    assert reply.text == "via the proxy" and sent.headers["host"] == "api.turnout-test.invalid"


def test_proxy_credentials_stay_secret() -> None:
    config = turnout.Config.from_dict(
        {"providers": {"p": {"type": "vllm", "proxy": "http://user:s3cret-pw@127.0.0.1:3128"}}}
    )
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.model_dump())


# -- the pool size ---------------------------------------------------------------------------------


def _concurrent_sync(config: dict[str, Any], calls: int) -> None:
    with Client(config=config) as client:
        threads = [threading.Thread(target=client.chat, args=("p:gpt-4o-mini", "hi")) for _ in range(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


async def _concurrent_async(config: dict[str, Any], calls: int) -> None:
    async with AsyncClient(config=config) as client:
        await asyncio.gather(*(client.chat("p:gpt-4o-mini", "hi") for _ in range(calls)))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("size", "expected"), [(None, 6), (2, 2)])
def test_max_connections_bounds_the_pool(mode: str, size: int | None, expected: int) -> None:
    with FakeServer(default_reply=Reply("slow", delay=0.3)) as server:
        config = _config(server, **({} if size is None else {"max_connections": size}))
        if mode == "sync":
            _concurrent_sync(config, 6)
        else:
            asyncio.run(_concurrent_async(config, 6))
        assert len(server.chat_requests) == 6 and server.connections_accepted == expected
