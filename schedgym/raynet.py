"""Joining an existing Ray cluster with a bounded wait (``--address`` / ``$RAY_ADDRESS``).

``ray.init(address=...)`` on an unreachable address retries for minutes (or forever) before it fails
with a traceback. :func:`connect_ray` first checks that the address accepts a TCP connection, then
runs ``ray.init`` under a watchdog, so a bad address fails within ``RAY_CONNECT_TIMEOUT_S`` seconds
(default 10; override with the environment variable ``SCHEDGYM_RAY_CONNECT_TIMEOUT_S``) with a
one-line :class:`RayConnectError` that names the address.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any

__all__ = ["RAY_CONNECT_TIMEOUT_S", "RayConnectError", "connect_ray", "connect_timeout_s", "parse_ray_address"]

#: Default seconds to wait for a Ray cluster to answer (``SCHEDGYM_RAY_CONNECT_TIMEOUT_S`` overrides).
RAY_CONNECT_TIMEOUT_S = 10.0


class RayConnectError(ConnectionError):
    """The Ray cluster at an address could not be reached in time (the message names it)."""


def connect_timeout_s() -> float:
    raw = os.environ.get("SCHEDGYM_RAY_CONNECT_TIMEOUT_S")
    if raw is None:
        return RAY_CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        raise ValueError(f"SCHEDGYM_RAY_CONNECT_TIMEOUT_S must be a number of seconds in (0, 3600], got {raw!r}")
    return value


def parse_ray_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``"host:port"`` or ``"ray://host:port"``; None for ``"auto"``/``"local"``."""
    if address in ("auto", "local"):
        return None
    text = address[len("ray://") :] if address.startswith("ray://") else address
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address must be HOST:PORT, ray://HOST:PORT, 'auto' or 'local', got {address!r}")
    return host, int(port)


def connect_ray(address: str, **init_kwargs: Any) -> Any:
    """``ray.init(address=address, **init_kwargs)`` that fails within the connect timeout.

    Raises :class:`RayConnectError` (one line, naming the address) when nothing answers there or Ray
    does not finish connecting in time.
    """
    timeout = connect_timeout_s()
    hostport = parse_ray_address(address)
    if hostport is not None:
        try:
            with socket.create_connection(hostport, timeout=timeout):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise RayConnectError(
                f"cannot reach a Ray cluster at {address} within {timeout:g} s ({reason}); "
                "check --address / RAY_ADDRESS (set SCHEDGYM_RAY_CONNECT_TIMEOUT_S to wait longer)"
            ) from None
    import ray

    def fail(*_: Any) -> None:
        raise TimeoutError

    use_alarm = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, fail) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout + 30.0)  # ray.init itself needs a few seconds
    try:
        return ray.init(address=address, **init_kwargs)
    except TimeoutError:
        _shutdown(ray)
        raise RayConnectError(f"Ray at {address} accepted a connection but did not finish connecting in time") from None
    except ConnectionError as exc:
        _shutdown(ray)
        raise RayConnectError(f"cannot connect to a Ray cluster at {address}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _shutdown(ray: Any) -> None:
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001  (best effort after a failed connect)
        pass
