"""Command line of the edge runtime (numpy, onnxruntime and Pillow; boto3 for s3://).

    python -m edge_runtime serve --channel /mnt/channel --model tags --public-key channel.pub.pem
    python -m edge_runtime serve --channel s3://bucket/channel --model tags --public-key key.pem \\
        --state-dir /var/lib/edge --feedback s3://bucket/raw --port 8080 --token-file /etc/edge/token
    python -m edge_runtime watch --channel /mnt/channel --model tags --public-key key.pem --input /camera
    python -m edge_runtime serve --channel s3://bucket/channel --model tags --root-key root.pub.pem

See docs/edge_runtime.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from edge_runtime.channel import DOWNLOAD_TIMEOUT_S, STAGES, ChannelClient
from edge_runtime.decode import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MEMORY_BUDGET
from edge_runtime.ed25519 import KeyFormatError, load_public_key
from edge_runtime.model import VARIANTS
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.server import DEFAULT_MAX_UPLOAD, EdgeServer
from edge_runtime.storage import open_store
from edge_runtime.trust import Keyring
from edge_runtime.watch import FolderWatcher

log = logging.getLogger("edge_runtime")

TOKEN_ENV = "EDGE_RUNTIME_TOKEN"


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: ``kind`` parsed from the text, refused unless above zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--channel", required=True, help="model channel: a folder or s3://bucket/prefix")
    common.add_argument("--model", required=True, help="model name in the channel")
    common.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="a signing key to trust from the start (Ed25519 public key file)",
    )
    common.add_argument(
        "--root-key",
        type=Path,
        default=None,
        help="the channel's root public key: signing keys then come from its key document",
    )
    common.add_argument(
        "--download-timeout",
        type=positive(float),
        default=DOWNLOAD_TIMEOUT_S,
        help="seconds one version's download may take in all",
    )
    common.add_argument(
        "--max-image-mb",
        type=positive(float),
        default=DEFAULT_MAX_IMAGE_BYTES / 2**20,
        help="memory one image's decoding may take (larger JPEGs decode smaller, others get 413)",
    )
    common.add_argument(
        "--image-memory-mb",
        type=positive(float),
        default=DEFAULT_MEMORY_BUDGET / 2**20,
        help="memory all images in flight may take together (more wait)",
    )
    common.add_argument("--stage", default="production", choices=STAGES)
    common.add_argument(
        "--state-dir", type=Path, default=Path("edge-state"), help="verified models, spool, logs"
    )
    common.add_argument(
        "--variant", default="float", choices=VARIANTS, help="int8 falls back to float if absent"
    )
    common.add_argument("--keep", type=positive(int), default=3, help="good versions kept on disk")
    common.add_argument("--poll", type=positive(float), default=30.0, help="seconds between channel checks")
    common.add_argument("--backoff-cap", type=positive(float), default=300.0, help="longest retry delay, s")
    common.add_argument("--threads", type=positive(int), default=None, help="onnxruntime intra-op threads")
    common.add_argument(
        "--max-inflight",
        type=positive(int),
        default=None,
        help="images run at once (default cores // threads)",
    )
    common.add_argument(
        "--endpoint-url", default=None, help="S3 endpoint for s3:// channel or feedback store"
    )
    common.add_argument(
        "--feedback", default=None, help="raw image store (folder or s3://) for feedback images"
    )
    common.add_argument("--spool-max-mb", type=positive(float), default=512.0, help="feedback spool bound")
    common.add_argument("--device-id", default=socket.gethostname())
    common.add_argument("--shadow", action="store_true", help="also run the staging model, log disagreements")
    common.add_argument(
        "--child-min-conf",
        type=float,
        default=None,
        help="bundles: below this child probability answer with the parent's group (default: the manifest's)",
    )
    common.add_argument(
        "--empty-sample-rate",
        type=share,
        default=0.05,
        help="share of images with no detection sent back with --feedback, chosen by image hash "
        "(uncertain scores always are); 0 sends none, 1 all",
    )
    common.add_argument(
        "--recent", type=int, default=24, help="predictions kept for the device's page GET / (0: none)"
    )
    common.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    serve = sub.add_parser("serve", parents=[common], help="HTTP inference server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port (logged)")
    serve.add_argument("--token", default=None, help=f"bearer token (prefer --token-file or ${TOKEN_ENV})")
    serve.add_argument("--token-file", type=Path, default=None)
    serve.add_argument("--max-upload-bytes", type=positive(int), default=DEFAULT_MAX_UPLOAD)
    serve.add_argument("--max-connections", type=positive(int), default=32, help="more get 503 at once")

    watch = sub.add_parser("watch", parents=[common], help="process images dropped into a folder")
    watch.add_argument("--input", required=True, type=Path, help="folder the camera writes to")
    watch.add_argument(
        "--output", type=Path, default=None, help="results folder (default: beside the images)"
    )
    watch.add_argument(
        "--processed", type=Path, default=None, help="where done images go (default input/processed)"
    )
    watch.add_argument("--watch-poll", type=positive(float), default=1.0, help="seconds between folder scans")
    watch.add_argument(
        "--draw", action="store_true", help="also write <stem>.drawn.jpg: the image with its boxes drawn"
    )
    return parser


def share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def read_key(path: Path) -> bytes:
    try:
        return load_public_key(path.read_bytes())
    except OSError as exc:
        raise SystemExit(f"cannot read the public key {path}: {exc}") from exc
    except KeyFormatError as exc:
        raise SystemExit(f"{path}: {exc}") from exc


def make_runtime(args: argparse.Namespace) -> EdgeRuntime:
    if args.public_key is None and args.root_key is None:
        raise SystemExit("give the channel's --root-key (preferred) or a --public-key to trust")
    keyring = Keyring(
        [read_key(args.public_key)] if args.public_key else [],
        root=read_key(args.root_key) if args.root_key else None,
        path=args.state_dir / "trust.json",
    )
    client = ChannelClient(open_store(args.channel, args.endpoint_url), keyring, args.download_timeout)
    feedback = open_store(args.feedback, args.endpoint_url) if args.feedback else None
    config = RuntimeConfig(
        model=args.model,
        stage=args.stage,
        state_dir=args.state_dir,
        variant=args.variant,
        keep=args.keep,
        poll_s=args.poll,
        backoff_cap_s=args.backoff_cap,
        threads=args.threads,
        max_inflight=args.max_inflight,
        device_id=args.device_id,
        spool_max_bytes=int(args.spool_max_mb * 2**20),
        shadow=args.shadow,
        child_min_conf=args.child_min_conf,
        max_image_bytes=int(args.max_image_mb * 2**20),
        image_memory_bytes=int(args.image_memory_mb * 2**20),
        empty_sample_rate=args.empty_sample_rate,
        recent=max(0, args.recent),
    )
    if feedback is None:
        log.warning("no --feedback store: uncertain images stay in the spool %s", args.state_dir / "spool")
    return EdgeRuntime(config, client, feedback)


def token_of(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return args.token_file.read_text().strip() or None
        except OSError as exc:
            raise SystemExit(f"cannot read the token file {args.token_file}: {exc}") from exc
    return args.token or os.environ.get(TOKEN_ENV) or None


def tame_malloc() -> None:
    """glibc only: at most 2 malloc arenas, and buffers of 1 MiB and more mapped on their
    own, so that an image's memory goes back to the system when its request ends instead
    of staying in the arena of whichever connection thread decoded it (with a thread per
    connection, the resident size otherwise grows to threads x largest image)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def main(argv: list[str] | None = None) -> int:
    tame_malloc()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        runtime = make_runtime(args)
    except OSError as exc:
        raise SystemExit(
            f"cannot use the state dir {args.state_dir}: {exc.strerror or exc} ({exc.filename or args.state_dir}). "
            "The runtime keeps its verified models, spool and logs there: give it a writable --state-dir "
            "(in Kubernetes, a writable volume)"
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.start()
    if runtime.current is None:
        others = runtime.channel_models()
        if others and args.model not in others:
            runtime.stop()
            raise SystemExit(
                f"the channel {args.channel} holds no model {args.model!r}; it holds: {', '.join(others)} "
                "(python run.py models lists a model's versions)"
            )
        log.warning("no good model on disk yet: waiting for the channel %s", args.channel)
    if args.command == "serve":
        token = token_of(args)
        if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
            log.warning("listening on %s without a bearer token: anyone on the network can use it", args.host)
        server = EdgeServer(
            runtime, args.host, args.port, token, args.max_upload_bytes, int(args.max_connections)
        )
        server.start_background()
        log.info("listening on %s", server.url)
        stop.wait()
        server.shutdown()
        server.server_close()
    else:
        watcher = FolderWatcher(
            runtime, args.input, args.output, args.processed, args.watch_poll, draw=args.draw
        )
        thread = threading.Thread(target=watcher.run, name="watch", daemon=True)
        thread.start()
        stop.wait()
        watcher.stop()
        thread.join(timeout=30)
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
