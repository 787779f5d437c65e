"""The composition root: the only place that builds and wires kmipd's parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from kmipd import __version__, config, logging_setup, reload, startup_checks, systemd_notify
from kmipd.api.app import build_api
from kmipd.api.auth import ApiAuth, SigningKeyError, load_signing_key
from kmipd.api.deps import ApiServices
from kmipd.api.keyprotect import KeyProtectService, load_instance_id
from kmipd.api.routes.kmip_http import KmipOverHttps
from kmipd.api.server import HttpsServer
from kmipd.audit import AuditLog
from kmipd.audit.chain import PURPOSE as AUDIT_CHAIN_PURPOSE
from kmipd.audit.chain import AuditChain
from kmipd.backup.schedule import BackupScheduler
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.keys.providers.base import KeyState, ProviderError, RootKeyProvider
from kmipd.keys.providers.registry import BUILTIN, build_providers
from kmipd.metrics import Metrics
from kmipd.operations import REGISTRY
from kmipd.protocol._generated import ObjectType
from kmipd.protocol.tables import VERSIONS
from kmipd.service.admin import AdminService
from kmipd.service.cluster_events import ROOT_KEY, TRUST, WRAPPING_KEY, ClusterEvents
from kmipd.service.context import ServerInfo
from kmipd.service.engine import KmipEngine
from kmipd.service.identity import ClientIdentity, IdentityResolver
from kmipd.service.node_registry import NodeAddress, NodeRegistry, describe, this_node_id
from kmipd.service.repository import ObjectRepository
from kmipd.service.rewrap import RewrapService
from kmipd.service.sightings import CertificateSightings
from kmipd.store.database import log_failure
from kmipd.store.postgres_database import is_postgres_url
from kmipd.store.store import Store, StoreError
from kmipd.transport import tls
from kmipd.transport.kmip_listener import KmipListener, Peer, Session, SessionEnded

log = logging.getLogger(__name__)

SUPPORTED_OBJECT_TYPES = (
    ObjectType.SYMMETRIC_KEY,
    ObjectType.SECRET_DATA,
    ObjectType.OPAQUE_OBJECT,
    ObjectType.CERTIFICATE,
    ObjectType.PUBLIC_KEY,
    ObjectType.PRIVATE_KEY,
)

# How often the trusted certificates are read again: a certificate added through the store
# is accepted, and one removed is refused by TLS and cut from open connections, within this.
TRUST_REFRESH_SECONDS = 2.0


class StartupError(Exception):
    """kmipd cannot start; the message says what to fix."""


def open_store(settings: config.Settings) -> Store:
    try:
        return Store.from_url(
            settings.store.url, base=settings.data_dir, pool_size=settings.store.pool_size
        )
    except StoreError as exc:
        raise StartupError(str(exc)) from None


class _KmipSession(Session):
    """One connection's client. When the trusted certificates change, it is looked up again
    before the next request: a removed certificate loses its open connections too."""

    __slots__ = ("_app", "_client", "_generation", "_peer")

    def __init__(self, app: App, peer: Peer, client: ClientIdentity, generation: int) -> None:
        self._app = app
        self._peer = peer
        self._client = client
        self._generation = generation

    async def handle(self, frame: bytes) -> bytes:
        app = self._app
        if self._generation != app.trust_generation:
            generation = app.trust_generation
            client = await app.identities.resolve(self._peer)
            if client is None or client.instance != self._client.instance:
                raise SessionEnded(
                    f"its certificate (SHA-256 {self._peer.certificate_fingerprint}) "
                    "is no longer allowed"
                )
            self._client, self._generation = client, generation
        started = time.perf_counter()
        try:
            return await app.engine.handle_ttlv(frame, self._client)
        finally:
            app.metrics.kmip_latency.observe(time.perf_counter() - started)


@dataclass
class App:
    settings: config.Settings
    store: Store
    keyring: Keyring
    engine: KmipEngine
    identities: IdentityResolver
    auth: ApiAuth
    metrics: Metrics
    listener: KmipListener | None = None
    https: HttpsServer | None = None
    trust_generation: int = 0  # bumped whenever the trusted certificates change
    _context: ssl.SSLContext | None = None
    _context_key: tuple[str, ...] = ()
    _refresher: asyncio.Task[None] | None = None
    audit: AuditLog | None = None
    admin: AdminService | None = None
    sightings: CertificateSightings | None = None
    rewrap: RewrapService | None = None
    providers: dict[str, RootKeyProvider] = field(default_factory=dict)
    instance_keys: InstanceKeys | None = None
    _root_key_checker: asyncio.Task[None] | None = None
    events: ClusterEvents | None = None
    backups: BackupScheduler | None = None  # when [backup] schedule_minutes is set
    nodes: NodeRegistry | None = None  # this node's row in the node registry, once serving
    _loop: asyncio.AbstractEventLoop | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    # The kmipd CA and the allowed client certificates and CAs (PEM), as last read: what
    # the TLS handshakes of both ports verify a client certificate against.
    _client_trust: list[bytes] = field(default_factory=list)

    @classmethod
    def build(cls, settings: config.Settings) -> App:
        if problems := startup_checks.problems(settings):
            raise StartupError("; ".join(problems))
        if settings.store.node_heartbeat_seconds <= 0:
            raise StartupError(
                "store.node_heartbeat_seconds must be more than 0 (default 10): set it in "
                f"{settings.data_dir / config.CONFIG_FILE}"
            )
        store = open_store(settings)
        kp = settings.keyprotect
        keyring = Keyring.in_data_dir(
            settings.data_dir,
            store_url=settings.store.url,
            rules=KeyRules(
                restore_window=kp.restore_window,
                purge_delay=kp.purge_delay,
                rotation_interval=kp.rotation_interval,
                action_delay=kp.action_delay,
            ),
        )
        try:
            providers = build_providers(settings, keyring)
        except config.ConfigError as exc:
            raise StartupError(str(exc)) from None
        instance_keys = InstanceKeys(store, keyring, providers)
        # A root key disabled or deleted here drops its instances' cached wrapping keys at
        # once (every use also checks the key's state, which covers other processes).
        keyring.add_listener(instance_keys.forget_root_key)
        repository = ObjectRepository(store, instance_keys)
        audit = AuditLog(
            store,
            AuditChain(keyring.derive_key(AUDIT_CHAIN_PURPOSE)),
            sync_reads=settings.audit.sync_reads,
        )
        server = ServerInfo(
            vendor_identification=f"kmipd {__version__}",
            versions=tuple(sorted(VERSIONS, reverse=True)),
            operations=tuple(REGISTRY),
            object_types=SUPPORTED_OBJECT_TYPES,
        )
        metrics = Metrics()

        async def after_batch(client: ClientIdentity, items: Any, results: Any) -> None:
            for item, result in zip(items, results, strict=False):
                metrics.count_kmip_item(item.operation, result.result_status)
            await audit.kmip_batch(client, items, results)

        engine = KmipEngine(repository, server, settings.limits.limits(), audit=after_batch)
        try:
            auth = ApiAuth(store, load_signing_key(settings.data_dir))
        except SigningKeyError as exc:
            raise StartupError(str(exc)) from None
        app = cls(settings, store, keyring, engine, IdentityResolver(store), auth, metrics)
        app.audit = audit
        app.providers = providers
        app.instance_keys = instance_keys
        app.sightings = CertificateSightings(store)
        # What one node changes, the others act on (kmipd.service.cluster_events).
        events = ClusterEvents(
            store,
            poll_seconds=settings.store.event_poll_seconds,
            listen_url=settings.store.url if is_postgres_url(settings.store.url) else None,
        )
        events.on(ROOT_KEY, instance_keys.forget_root_key)
        events.on(WRAPPING_KEY, instance_keys.forget)
        events.on(TRUST, lambda _: app.refresh_trust())
        app.events = events
        app.admin = AdminService(
            store, keyring, instance_keys, repository, settings, app.trust_changed
        )
        # Rotation of the instances' keys and the re-wrap job (service/rewrap.py).
        rw = settings.rewrap
        app.rewrap = RewrapService(
            store,
            keyring,
            instance_keys,
            batch_size=max(1, rw.batch_size),
            pause=rw.pause,
            poll_seconds=rw.poll_seconds,
            lease_seconds=rw.lease_seconds,
            retire_grace=rw.retire_grace,
            schedule_check_seconds=max(0.05, rw.schedule_check_seconds),
            changed=events.publish,
        )
        if settings.backup.schedule_minutes != 0:  # a negative one is refused
            try:
                app.backups = BackupScheduler(settings, store)
            except config.ConfigError as exc:
                raise StartupError(str(exc)) from None
        return app

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["store"] = "ok"
        except Exception as exc:  # report, never raise, from a health check
            checks["store"] = f"failed: {type(exc).__name__}"
        try:
            self.keyring.list()
            checks["root_key_provider"] = "ok"
        except Exception as exc:
            checks["root_key_provider"] = f"failed: {type(exc).__name__}"
        for name, provider in self.providers.items():
            if name == BUILTIN:
                continue
            try:
                health = await provider.health()
                checks[f"root_key_provider.{name}"] = "ok" if health.ok else "failed"
            except Exception as exc:
                checks[f"root_key_provider.{name}"] = f"failed: {type(exc).__name__}"
        return checks

    async def check_providers(self) -> None:
        """Refuse to start when a provider an instance uses is unknown or unreachable."""
        used: dict[str, list[str]] = {}
        for record in await self.store.instances():
            used.setdefault(record.provider, []).append(record.name)
        for name, instances in sorted(used.items()):
            provider = self.providers.get(name)
            listed = ", ".join(sorted(instances))
            if provider is None:
                raise StartupError(
                    f"instance(s) {listed} use root key provider {name!r}, which kmipd.toml "
                    f"does not configure: add a [root_key_providers.{name}] table"
                )
            try:
                health = await provider.health()
            except ProviderError as exc:
                health_ok, detail = False, str(exc)
            else:
                health_ok, detail = health.ok, health.detail
            if not health_ok:
                raise StartupError(
                    f"root key provider {name!r} (used by instance(s) {listed}) is not usable: "
                    f"{detail}; fix [root_key_providers.{name}] in kmipd.toml"
                )

    async def check_root_keys(self) -> None:
        """One pass of the periodic check: the root keys in use in providers whose keys can
        change outside kmipd; a key that is no longer usable drops its wrapping keys."""
        assert self.instance_keys is not None
        for record in await self.store.instances():
            provider = self.providers.get(record.provider)
            if provider is None or not _external_changes(provider):
                continue
            try:
                state = (await provider.status(record.root_key_id)).state
            except ProviderError as exc:
                log.warning(
                    "root key %s of instance %s: status unknown: %s",
                    record.root_key_id,
                    record.name,
                    exc,
                )
                continue
            if state not in (KeyState.ACTIVE, KeyState.DEACTIVATED):
                log.warning(
                    "root key %s of instance %s is %s in provider %s: the instance stops",
                    record.root_key_id,
                    record.name,
                    state.value,
                    record.provider,
                )
                self.instance_keys.forget_root_key(record.root_key_id)
                self.instance_keys.forget(record.name)

    async def _check_root_keys_forever(self) -> None:
        interval = self.settings.root_keys.check_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_root_keys()
            except Exception:  # keep checking
                log_failure(log, "the periodic root key check failed")

    async def metrics_text(self) -> bytes:
        listener = self.listener
        return await self.metrics.render(
            lambda: listener.active_connections if listener is not None else 0,
            self.store.count_objects,
        )

    async def _refresh_trust(self, *, rebuild: bool = False) -> None:
        certificates = await self.store.certificates()
        self.identities.remember(certificates)
        key = tuple(sorted(c.fingerprint for c in certificates))
        if rebuild or self._context is None or key != self._context_key:
            s = self.settings
            trusted = [s.path(s.tls.ca).read_bytes()] + [c.pem.encode() for c in certificates]
            self._context = tls.server_context(
                s.path(s.tls.certificate),
                s.path(s.tls.private_key),
                trusted,
                legacy_ciphers=s.kmip.legacy_tls_ciphers,
            )
            self._client_trust = trusted
            if self.https is not None:  # POST /kmip
                self.https.trust_clients(trusted)
            if self._context_key != key:
                self.trust_generation += 1
            self._context_key = key

    async def _refresh_trust_forever(self) -> None:
        """Re-read the trusted certificates on a timer, not on a connection: the first
        client after a change must not be the one that gets the stale context."""
        while True:
            await asyncio.sleep(TRUST_REFRESH_SECONDS)
            try:
                await self._refresh_trust()
            except Exception:  # keep serving with the last good trust store
                log_failure(log, "could not refresh the trusted certificates")

    async def refresh_trust(self) -> None:
        """Re-read the trusted certificates now (a change made through the API): added
        ones are accepted, removed ones refused and cut, without waiting for the timer."""
        await self._refresh_trust()

    async def trust_changed(self) -> None:
        """Certificates or instances changed here: refresh now, and tell the other nodes."""
        await self._refresh_trust()
        if self.events is not None:
            try:
                await self.events.publish(TRUST)
            except StoreError as exc:  # the others still refresh on their timer
                log.warning("could not tell the other nodes of a certificate change: %s", exc)

    async def reload(self, before: config.Settings) -> config.Settings:
        """SIGHUP: read kmipd.toml (``before`` is its last reading) and the TLS files again,
        and apply what can change live (``kmipd.reload``): new KMIP connections get the new
        server certificate, CA and trusted client certificates; open ones keep their own.
        The new reading of kmipd.toml; on any problem, ``before``, and nothing changes."""
        try:
            after = config.load(self.settings.data_dir)
            logging_setup.check(after.log)
        except config.ConfigError as exc:
            log.error("reload refused, still serving as before: %s", exc)
            return before
        candidate = reload.applied(self.settings, after)
        if problems := startup_checks.problems(candidate):
            log.error("reload refused, still serving as before: %s", "; ".join(problems))
            return before
        current = self.settings
        self.settings = candidate
        try:
            await self._refresh_trust(rebuild=True)
        except (OSError, ssl.SSLError, StoreError) as exc:
            self.settings = current
            log.error("reload refused, still serving as before: %s", exc)
            return before
        logging_setup.apply(after.log)
        for name in reload.restart_needed(before, after):
            log.warning("%s changed in kmipd.toml: restart kmipd to apply it", name)
        log.info(
            "reloaded: the KMIP port serves %s to new connections; %d client certificates "
            "or CAs allowed",
            candidate.tls.certificate,
            len(self._context_key),
        )
        return after

    async def drain(self) -> None:
        """SIGTERM's first step: stop taking connections and answer the requests in flight
        (KMIP within ``kmip.shutdown_grace`` seconds, HTTPS within uvicorn's grace)."""
        steps = []
        if self.listener is not None:
            steps.append(self.listener.drain(self.settings.kmip.shutdown_grace))
        if self.https is not None:
            steps.append(self.https.close())
        results = await asyncio.gather(*steps)
        if self.listener is not None and results[0]:
            log.warning(
                "%d KMIP request(s) still unanswered after kmip.shutdown_grace (%.0f s): "
                "their connections are closed",
                results[0],
                self.settings.kmip.shutdown_grace,
            )

    def _publish_root_key_change(self, root_key_id: str) -> None:
        """The keyring's change hook (any thread): tell the other nodes."""
        loop, events = self._loop, self.events
        if loop is None or events is None or loop.is_closed():
            return

        def publish() -> None:
            task = loop.create_task(events.publish(ROOT_KEY, root_key_id))
            self._background.add(task)
            task.add_done_callback(self._published)

        loop.call_soon_threadsafe(publish)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not tell the other nodes of a root key change: %s", task.exception())

    def _node_address(self) -> NodeAddress:
        """Where this node serves (read once it serves: the ports it really listens on)."""
        assert self.listener is not None and self.https is not None
        return describe(self.settings, self.listener.ports[0], self.https.ports[0])

    def tls_context(self) -> ssl.SSLContext:
        assert self._context is not None
        return self._context

    async def _session(self, peer: Peer) -> Session | None:
        generation = self.trust_generation
        client = await self.identities.resolve(peer)
        if client is None:
            return None
        if self.sightings is not None:
            await self.sightings.seen(client.allowed_by)
        return _KmipSession(self, peer, client, generation)

    async def start(self) -> None:
        await self.store.open()
        self._loop = asyncio.get_running_loop()
        if self.events is not None:
            await self.events.start()
            self.keyring.add_listener(self._publish_root_key_change)
        await self.check_providers()
        if any(_external_changes(p) for p in self.providers.values()):
            self._root_key_checker = asyncio.get_running_loop().create_task(
                self._check_root_keys_forever()
            )
        await self._refresh_trust()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_trust_forever())
        self.listener = KmipListener(
            self.settings.kmip,
            self.tls_context,
            self._session,
            self.settings.limits.limits(),
            on_handshake_failure=self.metrics.handshake_failures.inc,
            on_refused=self.metrics.count_refused_connection,
        )
        await self.listener.start()
        s = self.settings
        keyprotect = KeyProtectService(
            self.keyring, load_instance_id(s.data_dir), s.keyprotect.json_content_type
        )
        services = ApiServices(
            self.auth,
            self.readiness,
            self.metrics_text,
            {"keyprotect": keyprotect, "rewrap": self.rewrap, "settings": s},
            admin=self.admin,
            audit=self.audit,
            max_body_bytes=s.https.max_body_bytes,
        )
        self.nodes = NodeRegistry(
            self.store,
            this_node_id(self.listener.ports[0]),
            self._node_address,
            self.readiness,
            heartbeat_seconds=s.store.node_heartbeat_seconds,
        )
        services.extra["nodes"] = self.nodes
        services.extra["kmip"] = KmipOverHttps(
            self.engine,
            self.identities,
            s.limits.limits(),
            seen=self.sightings.seen if self.sightings is not None else None,
            observe=self.metrics.kmip_latency.observe,
        )
        self.https = HttpsServer(
            build_api(services),
            s.https.host,
            s.https.port,
            s.path(s.tls.certificate),
            s.path(s.tls.private_key),
            client_trust=self._client_trust,
        )
        await self.https.start()
        await self.nodes.start()
        if self.rewrap is not None:
            self.rewrap.start_background()
        if self.backups is not None:
            self.backups.start()

    async def close(self) -> None:
        if self.nodes is not None:  # first: the other nodes stop listing this one
            await self.nodes.close()
        if self.backups is not None:
            await self.backups.close()
        if self.rewrap is not None:
            await self.rewrap.close()
        if self.events is not None:
            await self.events.close()
        if self.audit is not None:
            await self.audit.close()
        for task in (self._refresher, self._root_key_checker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.https is not None:
            await self.https.close()
        if self.listener is not None:
            await self.listener.close()
        await self.store.close()
        self.keyring.close()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()


def _external_changes(provider: RootKeyProvider) -> bool:
    try:
        return provider.capabilities.external_changes
    except ProviderError:  # an unused provider that cannot tell (token absent)
        return False


async def serve(settings: config.Settings) -> None:
    """Run until SIGINT or SIGTERM (each answers the requests in flight first); SIGHUP
    reloads kmipd.toml and the TLS files (``App.reload``)."""
    app = App.build(settings)
    loop = asyncio.get_running_loop()
    # Before the ports open: SIGHUP's default action would end the process, and a reload
    # sent as soon as the port answers must not.
    reloads = _Reloads(app, settings)
    loop.add_signal_handler(signal.SIGHUP, reloads.request)
    try:
        await app.start()
    except BaseException:
        await app.close()
        raise
    assert app.listener is not None and app.https is not None
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    kmip_ports = ",".join(map(str, app.listener.ports))
    https_ports = ",".join(map(str, app.https.ports))
    log.info(
        "kmipd %s serving KMIP on %s port %s and HTTPS on %s port %s (data directory %s)",
        __version__,
        settings.kmip.host,
        kmip_ports,
        settings.https.host,
        https_ports,
        settings.data_dir,
    )
    if not logging_setup.json_lines():  # the journal then holds JSON only; the log has it
        print(
            f"kmipd {__version__}: KMIP on {settings.kmip.host}:{kmip_ports}, HTTPS on "
            f"{settings.https.host}:{https_ports}, data in {settings.data_dir}",
            flush=True,
        )
    systemd_notify.ready(f"serving KMIP on port {kmip_ports}, HTTPS on port {https_ports}")
    reloads.started()
    try:
        await stop.wait()
        systemd_notify.stopping()
        log.info("stopping: answering the requests in flight, refusing new connections")
        loop.remove_signal_handler(signal.SIGHUP)
        await reloads.finish()
        await app.drain()
    finally:
        await app.close()
    log.info("stopped")


class _Reloads:
    """SIGHUP handling: one reload at a time; a signal during a reload runs one more."""

    def __init__(self, app: App, settings: config.Settings) -> None:
        self._app = app
        try:
            # What the file said at start, without the command line's overrides (ports).
            self._file = config.load(settings.data_dir)
        except config.ConfigError:
            self._file = settings
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._serving = False
        self._pending = False  # a SIGHUP came while kmipd was starting

    def request(self) -> None:
        log.info("SIGHUP: reloading kmipd.toml and the TLS files")
        if not self._serving:
            self._pending = True
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    def started(self) -> None:
        """kmipd serves: run the reload a SIGHUP asked for while it was starting."""
        self._serving = True
        if self._pending:
            self._pending = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        systemd_notify.reloading()
        while True:
            self._again = False
            status = "serving; the last reload was refused (see the log)"
            try:
                before = self._file
                self._file = await self._app.reload(before)
                if self._file is not before:
                    status = "serving; reloaded"
            except Exception:  # a failed reload must not stop the server
                log_failure(log, "reload failed; still serving as before")
            if not self._again:
                systemd_notify.ready(status)
                return

    async def finish(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
