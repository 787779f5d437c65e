"""RSA key generation and key checks in worker processes, off the event loop.

OpenSSL holds the GIL while it searches for primes (measured: about 2 s for 4096 bits on the
CI machine, with no other thread running meanwhile), so a thread would not help: generated in
the server process, one Create Key Pair would stall every KMIP connection. The workers are
spawned (not forked from a process with threads) on first use and import only
``cryptography``; the key comes back as PKCS#8 DER over the worker's local pipe, never
through a file.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PUBLIC_EXPONENT = 65537
# Generations that may run at once; more wait their turn without holding the event loop.
WORKERS = max(1, min(4, os.cpu_count() or 1))

T = TypeVar("T")
R = TypeVar("R")

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _generate_der(length: int) -> bytes:
    """Runs in a worker: a new RSA private key as unencrypted PKCS#8 DER."""
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=length)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _exit_with_parent() -> None:
    """Runs in each worker as it starts: a worker whose server was killed (SIGKILL, OOM)
    would otherwise live on, idle, with the init process as its parent."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _is_consistent(der: bytes) -> bool:
    """Runs in a worker: does this PKCS#8 RSA key pass OpenSSL's consistency check?"""
    try:
        serialization.load_der_private_key(der, password=None)
    except ValueError:
        return False
    return True


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
            )
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


async def _in_worker(function: Callable[[T], R], argument: T) -> R:
    executor = _executor()
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, function, argument)
    except BrokenProcessPool:
        # A worker died (killed, out of memory): the next request gets a fresh pool.
        _discard(executor)
        raise


async def generate_rsa(length: int) -> rsa.RSAPrivateKey:
    """A new RSA private key of ``length`` bits, generated in a worker process."""
    der = await _in_worker(_generate_der, length)
    # Made by OpenSSL in our own worker: its consistency check (0.6 s of held GIL at 4096
    # bits) would only stall the event loop.
    key = serialization.load_der_private_key(
        der, password=None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


async def is_consistent(key: rsa.RSAPrivateKey) -> bool:
    """OpenSSL's check of a client's RSA private key (primes, exponents, CRT values), in a
    worker: it holds the GIL for 0.2 s (2048 bits) to over a second (4096 bits)."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return await _in_worker(_is_consistent, der)
