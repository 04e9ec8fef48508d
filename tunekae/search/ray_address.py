"""Where --address (or RAY_ADDRESS) leads, checked before ray.init and explained after it fails.

ray.init retries an address for minutes when nothing listens there (a typo, a stopped head) and
for longer still when something that is not Ray listens there (the dashboard's port 8265, which
`ray job submit` takes and Ray's docs put in RAY_ADDRESS). A cluster with token authentication
(Ray 2.60 turns it on for `ray start --head` once ~/.ray/auth_token exists) refuses a driver
without its token, and ray.init then says only "Failed to connect", after 20 s. Each of these
is the user's to fix: a UserError naming what to change, within seconds where a socket or one
gRPC call can tell.
"""
from __future__ import annotations

import os
import socket

from ..errors import UserError

START_A_CLUSTER = "(start one with `ray start --head`, or leave out --address and RAY_ADDRESS for a local Ray)"
GIVE_THE_GCS = ("give the cluster's address, the one `ray start --head` printed (host:6379 by default), or "
                "`auto` on one of its nodes; the dashboard's address is for `ray job submit`")
TOKEN_HELP = ("set RAY_AUTH_MODE=token and give the cluster's token (`ray get-auth-token` on its head prints "
              "it) in ~/.ray/auth_token or RAY_AUTH_TOKEN")
WHERE_RAY_READS_A_TOKEN = ("(Ray reads RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH names, "
                           "else ~/.ray/auth_token)")
# The first bytes a client sends on an HTTP/2 (gRPC) connection; Ray's GCS answers with its own
# SETTINGS frame, an HTTP/1 server (the dashboard) with a status line or an error page.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def requested(address: str | None) -> tuple[str | None, str]:
    """The address to attach to (None: start a local Ray) and how to name where it came from."""
    if address:
        return address, address
    env = os.environ.get("RAY_ADDRESS")
    return (env, f"{env} (from RAY_ADDRESS)") if env else (None, "")


def ray_current_cluster_file() -> str:
    """Where `ray start` records the machine's current cluster: <ray temp dir>/ray_current_cluster,
    the temp dir being $RAY_TMPDIR, else $TMPDIR (Linux), else /tmp. Ray has no public API for it
    (its reader is internal; ray-project/ray#14998 asks for public cluster information), so this
    follows Ray 2.60's own rule."""
    import sys
    import tempfile
    if "RAY_TMPDIR" in os.environ:
        base = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        base = os.environ["TMPDIR"]
    else:
        base = "/tmp" if sys.platform.startswith(("linux", "darwin")) else tempfile.gettempdir()
    return os.path.join(base, "ray", "ray_current_cluster")


def where_auto_points(address: str) -> str:
    """'auto' is RAY_ADDRESS, else the address of the last `ray start` on this machine
    (ray_current_cluster_file). That file outlives a head killed with -9 (or a reboot), and
    ray.init then retries the dead address for many minutes. Without the file, 'auto' stays Ray's
    to resolve."""
    if address != "auto":
        return address
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return env
    try:
        with open(ray_current_cluster_file()) as f:
            return f.read().strip() or address
    except OSError:
        return address


def check_reachable(address: str, named: str, timeout_s: float = 5.0) -> None:
    """UserError unless a Ray cluster may answer at `address` (`named`: how the user gave it).
    'auto' is probed where it leads (the recorded cluster); an unresolved 'auto' is left to Ray,
    which fails fast when it finds no running cluster."""
    target = where_auto_points(address)
    where = named if target == address else f"{named} ({target}, the last `ray start` here; " \
                                            f"`ray stop` forgets a cluster that is gone)"
    if target.startswith(("http://", "https://")):
        raise UserError(f"cannot attach to a Ray cluster at {where}: that is a web address; {GIVE_THE_GCS}")
    host, sep, port = target.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except OSError as e:
        raise UserError(f"cannot attach to a Ray cluster at {where}: nothing answers there ({e}) "
                        f"{START_A_CLUSTER}") from None
    with conn:
        reply = _first_reply(conn)
    # Only a reply that is there and is not HTTP/2 is judged: silence is left to Ray, and with
    # RAY_USE_TLS the GCS speaks TLS, whose first bytes are no HTTP/2 frame either.
    if reply and not _is_http2_settings(reply) and os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
        raise UserError(f"cannot attach to a Ray cluster at {where}: something other than Ray answers there "
                        f"(it replied {_first_line(reply)!r}; the Ray dashboard, on 8265 by default, is a web "
                        f"server); {GIVE_THE_GCS}")
    # Ray sends 'auto' a token of its own accord when it finds one; with none anywhere it sends
    # nothing, as to any other address
    if _is_http2_settings(reply) and not target.startswith("ray://") and (address != "auto" or not _a_token_here()):
        _check_token(target, named, timeout_s)


def _a_token_here() -> bool:
    """Whether any of the places Ray reads a token from (WHERE_RAY_READS_A_TOKEN) holds one."""
    return _token() is not None


def _token() -> str | None:
    """The token Ray would send, read where Ray reads it (WHERE_RAY_READS_A_TOKEN)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), os.path.expanduser("~/.ray/auth_token")):
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    return f.read().strip() or None
            except OSError:
                return None
    return None


def _check_token(target: str, named: str, timeout_s: float) -> None:
    """UserError when the GCS at `target` refuses the token this driver will send (or its lack of
    one): ray.init finds that out only after about 20 s of retries and as many lines of C++
    warnings. Asks for the cluster id, the GCS's cheapest call, with the metadata Ray's own client
    adds; any answer but UNAUTHENTICATED is left to ray.init."""
    import grpc
    metadata: tuple = ()
    if token_auth_on():
        token = _token()
        if token is None:   # token mode but no token anywhere: ray.init says so itself
            return
        # the header Ray's own gRPC client adds (Ray 2.60); Ray's helper that builds it is internal
        metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        ask = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            ask(b"", timeout=timeout_s, metadata=metadata)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise UserError(token_refused_message(named)) from None


def _first_reply(conn: socket.socket, timeout_s: float = 2.0) -> bytes:
    conn.settimeout(timeout_s)
    try:
        conn.sendall(HTTP2_PREFACE)
        return conn.recv(64)
    except OSError:
        return b""


def _is_http2_settings(reply: bytes) -> bool:
    """An HTTP/2 frame header: 3 bytes length, type 4 (SETTINGS), flags, stream 0."""
    return len(reply) >= 9 and reply[3] == 4 and reply[5:9] == b"\0\0\0\0"


def _first_line(reply: bytes) -> str:
    text = reply.decode("latin-1").splitlines()[0] if reply.strip() else ""
    return "".join(c if c.isprintable() else "?" for c in text)[:60]


def init_failure(error: BaseException, named: str) -> str:
    """What to tell the user when ray.init raised `error` (an AuthenticationError or a
    ConnectionError) for the cluster at `named`. Ray raises AuthenticationError by itself,
    before connecting, when token mode finds no token anywhere."""
    from ray.exceptions import AuthenticationError
    if isinstance(error, AuthenticationError) and "no authentication token" in str(error).lower():
        return token_missing_message(named)
    if refused_token(error):
        return token_refused_message(named)
    return f"cannot attach to a Ray cluster at {named}: {str(error).splitlines()[0]} {START_A_CLUSTER}"


def refused_token(error: BaseException) -> bool:
    """Whether ray.init failed because the cluster refused this driver's token (or its lack of
    one). Ray wraps the GCS client's AuthenticationError, with its traceback as text, into a
    RuntimeError inside the ConnectionError it raises."""
    from ray.exceptions import AuthenticationError
    seen = error
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def token_refused_message(named: str) -> str:
    if token_auth_on():
        sent = f"a token it does not accept {WHERE_RAY_READS_A_TOKEN}"
    else:
        sent = "no token (Ray sends one only with RAY_AUTH_MODE=token, or to `auto` when ~/.ray/auth_token exists)"
    return (f"cannot attach to a Ray cluster at {named}: it uses token authentication and this process "
            f"sent {sent}; {TOKEN_HELP}")


def token_missing_message(named: str) -> str:
    return (f"cannot attach to a Ray cluster at {named}: RAY_AUTH_MODE=token, but this process has no token "
            f"{WHERE_RAY_READS_A_TOKEN}; give the cluster's token (`ray get-auth-token` on its head prints it) "
            f"in one of them")


def token_auth_on() -> bool:
    """Whether this driver talks to Ray with a token: before ray.init, whether the user set
    RAY_AUTH_MODE=token; after it, also whether Ray turned token authentication on by itself
    (it then sets RAY_AUTH_MODE=token in the driver's environment)."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
