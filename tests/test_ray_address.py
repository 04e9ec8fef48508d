"""--address / RAY_ADDRESS judged before ray.init, which would retry for minutes: web addresses,
ports where something other than Ray answers, and what is left to Ray (an HTTP/2 server,
silence, a TLS cluster). The token refusal of a real cluster is tested in test_search_cluster."""
import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

from tunekae.errors import UserError
from tunekae.search.ray_address import check_reachable, requested

# What Ray 2.60's GCS sent on a connection that began with the HTTP/2 preface: its SETTINGS frame
GCS_SETTINGS = bytes.fromhex("000018040000000000000400400000000500400000000600004000fe0300000001")


def serve(reply: bytes | None):
    """A one-shot TCP server on a free port that reads the client's first bytes and answers
    `reply` (None: says nothing until the client leaves). Returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply)
            conn.settimeout(10)
            try:
                conn.recv(64)     # until the client closes
            except OSError:
                pass

    threading.Thread(target=answer, daemon=True).start()
    return listener.getsockname()[1]


def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_an_http2_server_like_rays_gcs_passes():
    check_reachable(f"127.0.0.1:{serve(GCS_SETTINGS)}", "the address")


def test_silence_is_left_to_ray():
    check_reachable(f"127.0.0.1:{serve(None)}", "the address")


def test_a_web_server_is_not_a_ray_cluster():
    server = web_server()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(UserError) as e:
            check_reachable(address, address)
    finally:
        server.shutdown()
    text = str(e.value)
    assert text.startswith(f"cannot attach to a Ray cluster at {address}: something other than Ray answers")
    assert "Ray dashboard" in text and "host:6379" in text and "ray job submit" in text


def test_an_http_status_line_is_quoted():
    port = serve(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n")
    with pytest.raises(UserError, match="it replied 'HTTP/1.0 400 Bad Request'"):
        check_reachable(f"127.0.0.1:{port}", "x")


def test_with_tls_a_reply_that_is_not_http2_is_left_to_ray(monkeypatch):
    # a TLS GCS answers a plain-text preface with a TLS alert record, not an HTTP/2 frame
    monkeypatch.setenv("RAY_USE_TLS", "1")
    check_reachable(f"127.0.0.1:{serve(bytes.fromhex('15030300020250'))}", "x")


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "https://ray.example.org"])
def test_a_web_address_is_refused_without_connecting(address):
    with pytest.raises(UserError, match="that is a web address; give the cluster's address"):
        check_reachable(address, address)


def test_ray_address_is_named_as_the_source(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert requested(None) == ("10.0.0.5:6379", "10.0.0.5:6379 (from RAY_ADDRESS)")
    assert requested("auto") == ("auto", "auto")
    monkeypatch.delenv("RAY_ADDRESS")
    assert requested(None) == (None, "")


def test_the_cli_refuses_the_dashboard_port_at_once(tmp_path):
    """RAY_ADDRESS=http://...:8265 is what Ray's docs set for `ray job submit`; a search that
    inherits it, or is given the dashboard's port, exits 2 and writes nothing."""
    server = web_server()
    out = tmp_path / "run"
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{server.server_address[1]}"}
    try:
        proc = subprocess.run([sys.executable, "-m", "tunekae", "search", "--space", "kae_vs_mlp", "--output", out],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 2, proc.stderr
    assert "(from RAY_ADDRESS): something other than Ray answers there" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


class TokenGcs:
    """A gRPC server that answers the GCS's GetClusterId as a Ray 2.60 GCS with token
    authentication does: UNAUTHENTICATED unless the call carries `authorization: Bearer <token>`."""

    def __init__(self, token: str):
        import grpc
        from concurrent.futures import ThreadPoolExecutor
        self.calls = []

        def cluster_id(request, context):
            self.calls.append(dict(context.invocation_metadata()).get("authorization"))
            if self.calls[-1] != f"Bearer {token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid or missing authentication token")
            return b""

        handler = grpc.method_handlers_generic_handler(
            "ray.rpc.NodeInfoGcsService", {"GetClusterId": grpc.unary_unary_rpc_method_handler(cluster_id)})
        self.server = grpc.server(ThreadPoolExecutor(2), handlers=(handler,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.stop(None)


def test_a_cluster_that_wants_a_token_is_refused_at_once_when_none_is_sent(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with TokenGcs("secret") as gcs, pytest.raises(UserError) as e:
        check_reachable(gcs.address, gcs.address)
    assert gcs.calls == [None]
    assert str(e.value).startswith(f"cannot attach to a Ray cluster at {gcs.address}: it uses token "
                                   f"authentication and this process sent no token")
    assert "set RAY_AUTH_MODE=token" in str(e.value) and "ray get-auth-token" in str(e.value)


def test_auto_is_asked_only_when_no_token_is_here(monkeypatch, tmp_path):
    """Ray sends ~/.ray/auth_token to 'auto' by itself, so with a token here no token sent by
    the check means nothing; with none anywhere, Ray too would send none."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    with TokenGcs("secret") as gcs:
        monkeypatch.setenv("RAY_ADDRESS", gcs.address)
        check_reachable("auto", "auto")
        assert gcs.calls == []
        (tmp_path / ".ray" / "auth_token").unlink()
        with pytest.raises(UserError, match="it uses token authentication and this process sent no token"):
            check_reachable("auto", "auto")
        assert gcs.calls == [None]


# Ray's token loader reads the environment once per process, so these run in their own.
CHECK = "import sys; from tunekae.search.ray_address import check_reachable; check_reachable(sys.argv[1], sys.argv[1])"


@pytest.mark.parametrize("token, accepted", [("secret", True), ("wrong", False)])
def test_the_token_ray_would_send_is_the_one_checked(token, accepted):
    with TokenGcs("secret") as gcs:
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        proc = subprocess.run([sys.executable, "-c", CHECK, gcs.address], env=env, capture_output=True,
                              text=True, timeout=60)
    assert gcs.calls == [f"Bearer {token}"]
    if accepted:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0 and "sent a token it does not accept" in proc.stderr


def test_token_mode_without_a_token_says_where_ray_looks(tmp_path):
    """RAY_AUTH_MODE=token and no token in any of Ray's places: ray.init raises its own
    AuthenticationError before connecting; the search exits 2 naming those places."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_TOKEN", "RAY_ADDRESS"))}
    with TokenGcs("secret") as gcs:
        proc = subprocess.run([sys.executable, "-m", "tunekae", "search", "--space", "kae_vs_mlp", "--output", out,
                               "--address", gcs.address], env={**env, "HOME": str(tmp_path), "RAY_AUTH_MODE": "token"},
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert (f"cannot attach to a Ray cluster at {gcs.address}: RAY_AUTH_MODE=token, but this process has no token"
            in proc.stderr)
    assert "RAY_AUTH_TOKEN" in proc.stderr and "ray get-auth-token" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
