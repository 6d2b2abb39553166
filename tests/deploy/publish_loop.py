"""A publishing process for the crash test: publishes versions one after another and
points both stages at each, printing every object write before it happens (so the
test can kill it at chosen points). Versions continue after the highest one present.

    python tests/deploy/publish_loop.py CHANNEL_DIR MODEL_ONNX SAMPLE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_runtime.storage import LocalStore
from tests.deploy.channel_helpers import key
from visionloop.deploy.channel import ChannelPublisher, Release


class AnnouncingStore(LocalStore):
    def put(self, key: str, data: bytes) -> None:
        print(f"put {key}", flush=True)
        super().put(key, data)


def main() -> None:
    channel, model_path, sample_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    store = AnnouncingStore(channel)
    publisher = ChannelPublisher(store, key(1))
    model = model_path.read_bytes()
    samples = {f"samples/{p.name}": p.read_bytes() for p in sorted(sample_dir.iterdir())}
    existing = [int(k.split("/")[2]) for k in store.list("models/tags") if k.split("/")[2].isdigit()]
    version = max(existing, default=0) + 1
    while True:
        # each version differs in its bytes (a trailing comment-free protobuf field would
        # change the model; appending to a sample image keeps the model file valid)
        files = {"model.onnx": model, **{n: b + str(version).encode() for n, b in samples.items()}}
        release = Release(model="tags", version=str(version), files=files, fields={"classes": ["x"]})
        publisher.publish(release)
        for stage in ("staging", "production"):
            publisher.set_pointer("tags", stage, str(version))
        print(f"done {version}", flush=True)
        version += 1


if __name__ == "__main__":
    main()
