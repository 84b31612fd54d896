"""``medsr serve``: a DICOM node that upscales the series it receives and forwards the derived series.

The node is a C-STORE SCP (pynetdicom). Its life cycle, all under ``storage``:

1. **receive**: each instance is written to ``incoming/<series>/`` and fsynced (file and
   folder) *before* the C-STORE is acknowledged, so an acknowledged instance survives a crash;
2. **complete**: a series counts as complete when no instance of it arrived for
   ``quiet_period`` seconds; it is then moved (one rename) to ``work/<series>.<n>/in/``;
3. **upscale**: :func:`medsr.inference.upscale_path` on that folder, with the model loaded
   once when the node starts, into ``work/<series>.<n>/out/`` (same rules as a local run);
4. **forward**: the derived series is stored to ``[forward] to`` (C-STORE or STOW-RS), then
   the work folder is deleted. A failure is logged and retried ``retries`` times,
   ``retry_delay`` seconds apart; after that the work folder is moved to
   ``failed/<series>.<n>/`` with ``reason.txt`` beside it: never silently dropped.

A restart resumes everything left in ``work/`` and ``incoming/``. Only associations from
the ``[[allow]]`` list (AE title *and* host) are accepted; log lines name series by
:func:`~medsr.pacs.locations.series_label` unless ``--show-ids``. The configuration is one
TOML file; see docs/user-guide.md ("medsr serve") for every key.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import socketserver
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsr.errors import InputError, MedsrError, UsageError

from .locations import DicomWebLocation, DimseLocation, is_remote, parse_location, series_label
from .transfer import instance_name, write_bytes_durably

__all__ = ["Allowed", "ServeConfig", "load_config", "Node", "serve"]

_REFUSED_NOT_AUTHORISED = 0x0124
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class Allowed:
    """A sender that may store to the node: its calling AE title and its host (IP address or name)."""

    ae_title: str
    host: str


@dataclass
class ServeConfig:
    """The ``medsr serve`` configuration (one TOML file; keys in docs/user-guide.md)."""

    storage: Path
    forward: DicomWebLocation | DimseLocation
    allow: list[Allowed]
    ae_title: str = "MEDSR"
    host: str = "0.0.0.0"
    port: int = 11112
    quiet_period: float = 30.0
    model: str = "bicubic"
    scale: int = 2
    device: str = "cpu"
    trust_bundle: bool = False
    retries: int = 3
    retry_delay: float = 60.0


def _get(table: dict, key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = table.get(key, default)
    if value is None:
        raise UsageError(f"`{where}.{key}` is required in the serve configuration.")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UsageError(f"`{where}.{key}` must be a {getattr(kind, '__name__', kind)}, got {value!r}.")
    return value


def _resolve(host: str) -> set[str]:
    """The IP addresses of an allow-list host (an address is itself)."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        raise UsageError(f"`allow.host` {host!r} does not resolve; give an IP address or a known host name.") from None


def load_config(path: Path) -> ServeConfig:
    """Read and check a serve configuration; raises ``UsageError`` naming the key, the constraint and the value."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"cannot read the serve configuration {path}: {err.strerror}.") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"the serve configuration {path} is not valid TOML: {err}.") from None
    unknown = sorted(set(data) - {"node", "allow", "model", "forward"})
    if unknown:
        raise UsageError(f"unknown section(s) {', '.join(unknown)} in {path}; known: node, allow, model, forward.")
    node, model, fwd = data.get("node", {}), data.get("model", {}), data.get("forward", {})
    allow_rows = data.get("allow", [])
    if not isinstance(allow_rows, list) or not allow_rows:
        raise UsageError("the serve configuration needs at least one [[allow]] entry (ae_title and host of a sender); "
                         "the node refuses every sender that is not listed.")
    allow = [Allowed(_get(a, "ae_title", str, None, "allow"), _get(a, "host", str, None, "allow")) for a in allow_rows]
    to = _get(fwd, "to", str, None, "forward")
    if not is_remote(to):
        raise UsageError(f"`forward.to` must be dicom://AET@HOST:PORT or a DICOMweb root http(s)://HOST:PORT/ROOT, got {to!r}.")
    forward = parse_location(to)
    if forward.study_uid is not None:
        raise UsageError("`forward.to` names a node or a DICOMweb root, without /studies/...")
    cfg = ServeConfig(
        storage=Path(_get(node, "storage", str, None, "node")),
        forward=forward,
        allow=allow,
        ae_title=_get(node, "ae_title", str, "MEDSR", "node"),
        host=_get(node, "host", str, "0.0.0.0", "node"),
        port=_get(node, "port", int, 11112, "node"),
        quiet_period=_get(node, "quiet_period", float, 30.0, "node"),
        model=_get(model, "name", str, "bicubic", "model"),
        scale=_get(model, "scale", int, 2, "model"),
        device=_get(model, "device", str, "cpu", "model"),
        trust_bundle=_get(model, "trust_bundle", bool, False, "model"),
        retries=_get(fwd, "retries", int, 3, "forward"),
        retry_delay=_get(fwd, "retry_delay", float, 60.0, "forward"),
    )
    if not 0 < cfg.port < 65536:
        raise UsageError(f"`node.port` must be 1-65535, got {cfg.port}.")
    if cfg.quiet_period < 0 or cfg.retries < 0 or cfg.retry_delay < 0:
        raise UsageError("`node.quiet_period`, `forward.retries` and `forward.retry_delay` must not be negative.")
    if cfg.scale not in (2, 4):
        raise UsageError(f"`model.scale` must be 2 or 4, got {cfg.scale}.")
    for a in allow:
        _resolve(a.host)  # fail at start-up, not at the first association
    return cfg


class Node:
    """The running node: storage SCP + a worker thread that completes, upscales and forwards series.

    Args:
        config: the checked configuration.
        upscaler: the loaded upscaler (loaded once, used for every series).
        show_ids: put Study/SeriesInstanceUIDs in log lines (off: hashed labels only).
        log: where log lines go (default: the ``medsr.serve`` logger).
    """

    def __init__(self, config: ServeConfig, upscaler: Any, *, show_ids: bool = False, log: Any = None) -> None:
        self.config = config
        self.upscaler = upscaler
        self.show_ids = show_ids
        self.log = log or logging.getLogger("medsr.serve").info
        root = config.storage
        self.incoming, self.work, self.failed = root / "incoming", root / "work", root / "failed"
        for d in (self.incoming, self.work, self.failed):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)  # received images are patient data
        self._lock = threading.Lock()  # receipt vs claiming a series folder
        self._last: dict[str, float] = {}  # series folder -> time of its latest instance
        self._retry_at: dict[str, float] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._addrs = {a: _resolve(a.host) for a in config.allow}  # each allowed sender's IP addresses
        self._server: Any = None
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ naming

    def _name(self, study: str, series: str) -> str:
        return f"study {study} series {series}" if self.show_ids else f"{series_label(study, 'study')} {series_label(series)}"

    def _job_name(self, job: Path) -> str:
        """Log name of a work folder (read from its first instance)."""
        import pydicom

        for f in sorted((job / "in").glob("*.dcm")):
            try:
                ds = pydicom.dcmread(str(f), stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"])
                return self._name(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
            except Exception:  # an unreadable file: name the folder instead
                continue
        return job.name

    # ------------------------------------------------------------------ receiving

    def _allowed(self, ae_title: str, address: str) -> bool:
        return any(a.ae_title == ae_title.strip() and address in hosts for a, hosts in self._addrs.items())

    def on_store(self, event: Any) -> int:
        """EVT_C_STORE: check the sender, write the instance durably, then acknowledge."""
        requestor = event.assoc.requestor
        if not self._allowed(str(requestor.ae_title), str(requestor.address)):
            self.log(f"refused an instance from AE {str(requestor.ae_title).strip()!r} at {requestor.address}: not on the allow-list")
            return _REFUSED_NOT_AUTHORISED
        try:
            ds = event.dataset
            study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        except Exception:
            return _CANNOT_UNDERSTAND
        key = series_label(study + "/" + series)
        try:
            with self._lock:
                folder = self.incoming / key
                new = not folder.exists()
                folder.mkdir(parents=True, exist_ok=True)
                write_bytes_durably(event.encoded_dataset(), folder / instance_name(sop))
                self._last[key] = time.monotonic()
        except OSError as err:
            self.log(f"cannot store a received instance ({err.strerror}); refused it, the sender keeps it")
            return _OUT_OF_RESOURCES
        if new:
            self.log(f"receiving {self._name(study, series)}")
        return 0x0000

    def _on_rejected(self, event: Any) -> None:
        self.log(f"refused an association from AE {str(event.assoc.requestor.ae_title).strip()!r} at "
                 f"{event.assoc.requestor.address}: not on the allow-list")

    def start(self) -> None:
        """Listen (non-blocking) and start the worker thread."""
        import pynetdicom
        from pynetdicom import evt
        from pynetdicom.sop_class import Verification
        from pynetdicom.transport import ThreadedAssociationServer

        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
        node = self

        class AllowListServer(ThreadedAssociationServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:  # a host not on the list: closed at once
                if any(client_address[0] in hosts for hosts in node._addrs.values()):
                    return True
                node.log(f"refused a connection from {client_address[0]}: not on the allow-list")
                return False

        ae = pynetdicom.AE(ae_title=self.config.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        for cx in pynetdicom.AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, pynetdicom.ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_calling_aet = sorted({a.ae_title for a in self.config.allow})
        handlers = [(evt.EVT_C_STORE, self.on_store), (evt.EVT_REJECTED, self._on_rejected)]
        try:
            self._server = ae.make_server((self.config.host, self.config.port), evt_handlers=handlers, server_class=AllowListServer)
        except OSError as err:
            raise UsageError(f"cannot listen on {self.config.host}:{self.config.port} ({err.strerror}); change `node.port`.") from None
        threading.Thread(target=self._server.serve_forever, name="medsr-scp", daemon=True).start()
        self._worker = threading.Thread(target=self._loop, name="medsr-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop listening and let the worker finish the series it is on."""
        self._stop.set()
        if self._server is not None:  # made by make_server, so not in the AE's own server list
            socketserver.BaseServer.shutdown(self._server)
            self._server.server_close()
        if self._worker is not None:
            self._worker.join()

    # ------------------------------------------------------------------ processing

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.process_ready()
            except Exception as err:  # never let the worker die: log and carry on
                self.log(f"worker error: {type(err).__name__}: {err}")

    def process_ready(self) -> int:
        """Claim complete series, then upscale + forward every due work folder; returns how many were handled."""
        now = time.monotonic()
        with self._lock:
            for folder in sorted(self.incoming.iterdir()):
                if not folder.is_dir() or now - self._last.get(folder.name, self._started) < self.config.quiet_period:
                    continue
                job = self.work / f"{folder.name}.{time.time_ns()}"
                job.mkdir()
                os.replace(folder, job / "in")  # one rename: later instances of the series start a new folder
                self._last.pop(folder.name, None)
        done = 0
        for job in sorted(self.work.iterdir()):
            if self._stop.is_set():
                break
            if job.is_dir() and self._retry_at.get(job.name, 0.0) <= time.monotonic():
                self._process(job)
                done += 1
        return done

    def _process(self, job: Path) -> None:
        from medsr.inference import upscale_path  # deferred: `medsr serve --help` and the listener start without torch and MONAI

        from .remote import derived_series, push_files

        name = self._job_name(job)
        attempts_file = job / "attempts"
        attempts = int(attempts_file.read_text() or 0) if attempts_file.exists() else 0
        try:
            n_in = len(list((job / "in").glob("*.dcm")))
            self.log(f"{name}: complete ({n_in} instances), upscaling x{self.config.scale} with {self.upscaler.name}")
            out = job / "out"
            shutil.rmtree(out, ignore_errors=True)
            result = upscale_path(job / "in", out, self.upscaler, overwrite=True, progress=False, log=lambda m: None)
            if result.failed:
                raise InputError(f"{len(result.failed)} input(s) could not be upscaled: {result.failed[0][1]}")
            stored = sum(push_files(self.config.forward, files) for files in derived_series(out))
        except Exception as err:
            attempts += 1
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if not isinstance(err, MedsrError):
                reason = f"{type(err).__name__}: {reason}"
            attempts_file.write_text(str(attempts))
            if attempts > self.config.retries:
                target = self.failed / job.name
                os.replace(job, target)
                (target / "reason.txt").write_text(reason + "\n")
                self.log(f"{name}: FAILED after {attempts} attempt(s): {reason}; parked in {target}")
            else:
                self._retry_at[job.name] = time.monotonic() + self.config.retry_delay
                self.log(f"{name}: attempt {attempts} failed: {reason}; retrying in {self.config.retry_delay:g} s")
            return
        shutil.rmtree(job)
        self._retry_at.pop(job.name, None)
        self.log(f"{name}: forwarded the derived series ({stored} instances) to {self.config.forward.host}")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM, then stop cleanly."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        while not self._stop.wait(0.5):
            pass
        self.log("stopping: finishing the current series")
        self.stop()


def serve(config_path: Path, *, show_ids: bool = False, verbose: bool = False) -> None:
    """Load the configuration and the model once, then run the node until SIGINT/SIGTERM."""
    from medsr.inference import describe, load_upscaler  # deferred: as above

    cfg = load_config(config_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s medsr serve: %(message)s")
    log = logging.getLogger("medsr.serve").info
    upscaler = load_upscaler(cfg.model, cfg.scale, device=cfg.device, trust_bundle=cfg.trust_bundle, log=log)
    log(f"model loaded: {describe(upscaler) if verbose else f'{upscaler.name} x{cfg.scale}'}")
    node = Node(cfg, upscaler, show_ids=show_ids, log=log)
    node.start()
    pending = sum(1 for d in (node.incoming, node.work) for _ in d.iterdir())
    log(f"listening as {cfg.ae_title} on {cfg.host}:{cfg.port}; forwarding to {cfg.forward.host}"
        + (f"; resuming {pending} unfinished series" if pending else ""))
    node.wait()
