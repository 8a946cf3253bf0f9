"""A TCP relay on 127.0.0.1 in front of a real git server (`git daemon`, the Basic-auth
`git http-backend`, sshd), so a test can make the server slow, cut it off in the middle of
an answer, or make it a listener that never answers, whatever the protocol on top: what
the lazy vault's fetch sees is a server that died, went away, or hangs."""

from __future__ import annotations

import socket
import struct
import threading
import time


class Relay:
    """Relays connections to ``127.0.0.1:target``. ``mode``: ``"pass"`` (relay; slowly,
    about 2 MB/s, while ``slow`` is set), ``"refuse"`` (a new connection is closed at once:
    the server is gone) or ``"silent"`` (a new connection is accepted and never answered).
    ``relayed`` counts the server's bytes sent on."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.mode = "pass"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.slow = threading.Event()
        self.relayed = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, url: str) -> str:
        """``url`` (of the server) with the relay's port in place of the server's."""
        return url.replace(f"127.0.0.1:{self.target}", f"127.0.0.1:{self.port}", 1)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client = self.sock.accept()[0]
            except OSError:
                continue
            if self.mode == "refuse":
                _reset(client)
                continue
            self._conns.append(client)
            if self.mode == "silent":
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                _reset(client)
                continue
            self._conns.append(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while data := src.recv(32768):
                dst.sendall(data)
                if down:
                    self.relayed += len(data)
                    if self.slow.is_set():
                        time.sleep(0.015)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Reset every connection at once, what the relay holds of them with it."""
        conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.cut()
        self.sock.close()


def _reset(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)  # wakes a relay thread blocked on it
    except OSError:
        pass
    finally:
        s.close()
