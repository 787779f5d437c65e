"""A small TCP proxy on 127.0.0.1 for tests: put it between a process and a server, then cut
the path (``stop()`` closes the listener and every connection through it, as a network
outage or a database going away would) and restore it (``start()`` listens again on the same
port). Threads, blocking sockets; no dependency."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.server import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running = False
        self.accepted = 0

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Listen on ``self.port`` (the same port after a ``stop()``)."""
        assert not self._running
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._running = True
        self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        """Stop listening and close every connection through the proxy, both ends."""
        self._running = False
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
            threads, self._threads = list(self._threads), []
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(5)
        if self._listener is not None:
            _close(self._listener)
            self._listener = None

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._running:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._running:
                _close(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            self.accepted += 1
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, destination: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                destination.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end both (the other pump sees its recv fail and stops too).
            for sock in (source, destination):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
