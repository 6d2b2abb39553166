"""Benchmark: data QA, hashing and versioning of a folder of images.

One run measures, on a generated folder of N JPEGs (450x300, ~30 KB, seeded content)
with a Ground Truth CSV in the metal-tags format:

1. floor: a bare Pillow loop that opens and fully decodes every image;
2. visionloop, cold: ``Scan`` (list + labels) streaming its candidates into
   ``QARunner.run`` (fresh blob store, fresh facts cache) + ``set_splits`` (in place)
   + ``ImageDataset(...).version_id``;
3. visionloop, warm: a re-run with nothing changed, then a re-version after adding 1%
   new images (and their CSV rows), with the same blob store and facts cache;
4. peak memory of the cold path at N/10 and N images, each in its own subprocess
   (peak RSS growth via ``VmHWM`` after a ``clear_refs`` reset; Python-heap peak and
   the manifest's retained size via ``tracemalloc``).

The generated images are cached under ``--workdir`` (by default a folder in the system
temp dir) and reused by later runs; the data set folders are hard links into that cache.
Every timed run reads files that are already in the page cache (all files are read once
before timing), so the figures measure CPU and file-system work, not the disk. Each round
times the floor, the cold run and the warm runs back to back; times reported are the
fastest round, ratios the median of the ratios within a round, and CPU time (user + system
of this process) is given alongside wall time, because a shared machine disturbs it less.

    .venv/bin/python benchmarks/data_qa.py                # 10,000 images
    .venv/bin/python benchmarks/data_qa.py --images 2000  # quicker
    .venv/bin/python benchmarks/data_qa.py --memory-only  # only 4., at 1,000 and 10,000

Results: a table on stdout and ``benchmarks/results/data_qa-n<N>.json``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, features  # noqa: E402

from benchmarks.machine import cpu_model  # noqa: E402
from visionloop.data.blobstore import LocalBlobStore  # noqa: E402
from visionloop.data.dataset import DatasetManifest, ImageDataset  # noqa: E402
from visionloop.data.facts_cache import FactsCache  # noqa: E402
from visionloop.data.ingest import Scan  # noqa: E402
from visionloop.data.qa import QAConfig, QARunner  # noqa: E402
from visionloop.data.sources import LocalSource  # noqa: E402
from visionloop.data.split import SplitConfig, set_splits  # noqa: E402

GENERATOR_VERSION = 1
WIDTH, HEIGHT = 450, 300
JPEG_QUALITY = 90
NOISE_AMPLITUDE = 4.0
LABELED_SHARE = 0.92
CLASS_NAMES = ["scratch"]
GROUP_PATTERN = "^(?P<group>.+?)-cropped-"
POSITIONS = ("left-top", "left-bottom", "right-top", "right-bottom")
SUBFOLDERS = ("2021-01-28/good", "2021-01-28/bad", "2021-02-11/good", "2021-02-11/bad")
GT_HEADER = [
    "source_ref",
    "image_width",
    "image_height",
    "image_depth",
    "annotations",
    "event_time",
    "labeling_job",
    "status",
]
TARGETS = {"visionloop_over_floor": 1.5, "reversion_fraction": 0.10, "memory_ratio": 1.5}
RESULTS_DIR = ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------- data


def image_name(index: int) -> tuple[str, str]:
    """(subfolder, file name) of image ``index``: four crops per capture group."""
    group = index // 4
    stamp = dt.datetime(2020, 4, 22, 8, 0, 0) + dt.timedelta(seconds=7 * group)
    name = f"image-{stamp:%Y-%m-%d-%H-%M-%S}-{group % 100:02d}-cropped-{POSITIONS[index % 4]}.jpg"
    return SUBFOLDERS[group % len(SUBFOLDERS)], name


def csv_row(seed: int, index: int) -> list[str] | None:
    """The Ground Truth CSV row of image ``index``, or None when it is unlabeled."""
    rng = np.random.default_rng([seed, index, 1])
    if rng.random() >= LABELED_SHARE:
        return None
    sub, name = image_name(index)
    n_boxes = int(rng.choice([0, 0, 1, 1, 2, 3]))
    anns = []
    for _ in range(n_boxes):
        w, h = int(rng.integers(20, 160)), int(rng.integers(20, 140))
        left, top = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
        anns.append({"class_id": 0, "top": top, "left": left, "height": h, "width": w})
    job = hashlib.sha256(f"{seed}-{index // 400}".encode()).hexdigest()[:6]
    return [
        f"s3://${{bucket}}/pipeline/assets/images/{sub}/{name}",
        str(WIDTH),
        str(HEIGHT),
        "3",
        repr(anns),
        f"{1657199072.0 + index * 37.0}",
        f"labeling-job/quality-inspection-labeling-job-{job}",
        "APPROVED",
    ]


_NOISE: np.ndarray | None = None
_GRID: tuple[np.ndarray, np.ndarray] | None = None


def image_bytes(seed: int, index: int) -> bytes:
    """A seeded 'photo' of a metal tag: a lit background, a rounded plate with a hole,
    a few scratches, a slight blur and sensor noise; ~30 KB as JPEG quality 90."""
    global _NOISE, _GRID
    if _NOISE is None or _GRID is None:
        _NOISE = (
            np.random.default_rng([seed, 0xC0FFEE]).normal(0, 1, (2 * HEIGHT, 2 * WIDTH)).astype(np.float32)
        )
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        _GRID = (xx - WIDTH / 2, yy - HEIGHT / 2)
    rng = np.random.default_rng([seed, index])
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    light = rng.uniform(90, 170) + gx * _GRID[0] + gy * _GRID[1]
    img = Image.fromarray(np.clip(light, 0, 255).astype(np.uint8), "L").convert("RGB")
    draw = ImageDraw.Draw(img)

    def color(lo: int, hi: int) -> tuple[int, int, int]:
        r, g, b = (int(v) for v in rng.integers(lo, hi, 3))
        return r, g, b

    x0, y0 = int(rng.integers(20, 120)), int(rng.integers(20, 80))
    x1, y1 = (
        min(x0 + int(rng.integers(200, 300)), WIDTH - 10),
        min(y0 + int(rng.integers(120, 180)), HEIGHT - 10),
    )
    draw.rounded_rectangle([x0, y0, x1, y1], radius=20, fill=color(120, 230), outline=(40, 40, 40), width=3)
    draw.ellipse([x0 + 15, y0 + 15, x0 + 45, y0 + 45], fill=color(0, 80))
    for _ in range(int(rng.integers(2, 8))):
        xa, xb = (int(v) for v in rng.integers(0, WIDTH, 2))
        ya, yb = (int(v) for v in rng.integers(0, HEIGHT, 2))
        draw.line([xa, ya, xb, yb], fill=color(0, 255), width=int(rng.integers(1, 4)))
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0))).astype(np.float32)
    oy, ox = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
    arr += NOISE_AMPLITUDE * _NOISE[oy : oy + HEIGHT, ox : ox + WIDTH, None]
    arr += rng.normal(0, NOISE_AMPLITUDE / 2, (1, 1, 3)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _write_pool_images(job: tuple[str, int, list[int]]) -> int:
    pool_dir, seed, indices = job
    for index in indices:
        sub, name = image_name(index)
        path = Path(pool_dir, sub, name)
        tmp = path.with_name(f".tmp-{os.getpid()}-{name}")
        tmp.write_bytes(image_bytes(seed, index))
        os.replace(tmp, path)
    return len(indices)


def ensure_pool(workdir: Path, seed: int, count: int) -> Path:
    """Images 0..count-1 in ``<workdir>/pool-v<gen>-seed<seed>``, generating the missing."""
    pool = workdir / f"pool-v{GENERATOR_VERSION}-seed{seed}"
    for sub in SUBFOLDERS:
        (pool / sub).mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (pool / "/".join(image_name(i))).is_file()]
    if missing:
        t0 = time.perf_counter()
        procs = os.cpu_count() or 1
        chunks = [missing[k : k + 200] for k in range(0, len(missing), 200)]
        with Pool(procs) as workers:
            done = sum(workers.imap_unordered(_write_pool_images, [(str(pool), seed, c) for c in chunks]))
        print(f"generated {done} images in {time.perf_counter() - t0:.1f} s ({procs} processes) -> {pool}")
    return pool


def write_labels(folder: Path, seed: int, indices: range) -> int:
    rows = [r for r in (csv_row(seed, i) for i in indices) if r is not None]
    tmp = folder / ".labels.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(GT_HEADER)
        writer.writerows(rows)
    os.replace(tmp, folder / "labels.csv")
    return len(rows)


def link_images(pool: Path, folder: Path, indices: range) -> None:
    for index in indices:
        rel = "/".join(image_name(index))
        dst = folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(pool / rel, dst)
        except OSError:
            shutil.copy2(pool / rel, dst)


def build_folder(pool: Path, folder: Path, seed: int, n: int) -> int:
    """A fresh data set folder with images 0..n-1 (hard links into the pool) and labels.csv."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    link_images(pool, folder, range(n))
    return write_labels(folder, seed, range(n))


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jpg"))


def warm_page_cache(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as fh:
            total += len(fh.read())
    return total


# --------------------------------------------------------------------------- timed paths


class Clock:
    """Wall-clock and this process's CPU time (user + system) of a block. CPU time is
    what other processes on a shared machine disturb least."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def as_dict(self) -> dict[str, float]:
        return {"wall_s": self.wall, "cpu_s": self.cpu}


def floor(paths: list[Path]) -> dict[str, float]:
    """Open and fully decode every image with Pillow, nothing else."""
    with Clock() as clock:
        for path in paths:
            with Image.open(path) as im:
                im.load()
    return clock.as_dict()


def content_floor(paths: list[Path], store: Path) -> dict[str, float]:
    """For context: read, sha256, decode and copy each file into a content-addressed
    folder: the least any content-addressed QA has to do per image."""
    store.mkdir(parents=True, exist_ok=True)
    with Clock() as clock:
        for path in paths:
            with open(path, "rb") as fh:
                data = fh.read()
            sha = hashlib.sha256(data).hexdigest()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
            with open(store / f"{sha}.jpg", "wb") as fh:
                fh.write(data)
    return clock.as_dict()


class TimedBlobStore(LocalBlobStore):
    """The local blob store, adding up the time spent in ``put`` (writing new blobs)."""

    put_s = 0.0

    def put(self, sha256: str, ext: str, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            super().put(sha256, ext, data)
        finally:
            self.put_s += time.perf_counter() - t0


def visionloop_version(
    folder: Path, blob_root: Path, cache_path: Path, on_phase: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """ingest + QA + split + version id of ``folder``; the timings of each phase.

    The candidates stream from ingestion into QA (``Scan.candidates``), so the "ingest"
    phase is listing the folder and importing the labels, and making each candidate is
    part of "qa". The split is set in place on QA's records. ``on_phase`` (the memory
    child's) is called with each phase's name as it ends."""
    phase_done = on_phase or (lambda name: None)
    with Clock() as clock:
        t0 = time.perf_counter()
        source = LocalSource(folder)
        scan = Scan(source, "ground-truth", CLASS_NAMES, GROUP_PATTERN)
        phase_done("ingest")
        t1 = time.perf_counter()
        blobs = TimedBlobStore(blob_root)
        cache = FactsCache(cache_path)
        runner = QARunner(source, blobs, scan.class_names, QAConfig(), cache)
        try:
            records, report = runner.run(scan.candidates(), scan.source_uri)
        finally:
            cache.close()
        phase_done("qa")
        t2 = time.perf_counter()
        set_splits(records, SplitConfig())
        phase_done("split")
        t3 = time.perf_counter()
        jobs = sorted({r.labeling_job for r in records if r.labeling_job})
        manifest = DatasetManifest(
            class_names=scan.class_names,
            source=scan.source_uri,
            label_format=scan.format,
            records=records,
            labeling_jobs=jobs,
        )
        del records
        dataset = ImageDataset(manifest, blobs)
        version_id = dataset.version_id
        phase_done("version")
        t4 = time.perf_counter()
    return {
        **clock.as_dict(),
        "phases_s": {"ingest": t1 - t0, "qa": t2 - t1, "split": t3 - t2, "version": t4 - t3},
        "qa_blob_writes_s": blobs.put_s,
        "candidates": report.total,
        "accepted": report.accepted,
        "quarantined": report.quarantined,
        "decoded": runner.decoded,
        "version_id": version_id,
        "dataset": dataset,
    }


# --------------------------------------------------------------------------- memory child


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so that the peak measured
    afterwards is the run's, not the imports'."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss() -> int:
    kib = _status_kib("VmRSS")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def peak_rss_bytes() -> int:
    kib = _status_kib("VmHWM")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def memory_child(folder: Path, scratch: Path, mode: str) -> dict[str, Any]:
    """Run the cold path once in this (fresh) process; measure its memory."""
    import PIL.JpegImagePlugin  # noqa: F401  (loaded before the baseline)

    Image.init()
    with Image.open(next(folder.rglob("*.jpg"))) as im:
        im.load()
    gc.collect()
    out: dict[str, Any] = {"mode": mode}
    if mode == "tracemalloc":
        tracemalloc.start()
        base_current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
    phase_peaks: dict[str, int] = {}

    def phase_peak(name: str) -> None:
        """The heap peak within the phase that just ended (then reset, so the run's peak
        is the largest of the phases')."""
        phase_peaks[name] = tracemalloc.get_traced_memory()[1] - base_current
        tracemalloc.reset_peak()

    reset = reset_peak_rss()
    base_rss = current_rss()
    on_phase = phase_peak if mode == "tracemalloc" else None
    result = visionloop_version(folder, scratch / "blobs", scratch / "facts.sqlite", on_phase)
    dataset = result.pop("dataset")
    if mode == "tracemalloc":
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["heap_peak_bytes"] = max(phase_peaks.values())
        out["heap_peak_by_phase_bytes"] = phase_peaks
        out["manifest_retained_bytes"] = current - base_current
    else:
        peak_rss = peak_rss_bytes()
        out["rss_method"] = "VmHWM after clear_refs" if reset else "ru_maxrss (peak not reset)"
        out["rss_baseline_bytes"] = base_rss
        out["rss_peak_bytes"] = peak_rss
        out["rss_growth_bytes"] = peak_rss - base_rss
    out["manifest_json_bytes"] = len(dataset.manifest.model_dump_json())
    out["images"] = len(dataset.records)
    out["seconds"] = result["wall_s"]
    return out


def run_memory_child(folder: Path, scratch: Path, mode: str) -> dict[str, Any]:
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-memory",
        mode,
        "--child-folder",
        str(folder),
        "--child-scratch",
        str(scratch),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr}")
    shutil.rmtree(scratch, ignore_errors=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- main


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "libjpeg_turbo": features.check_feature("libjpeg_turbo"),
        "gpu": "none used",
    }


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def settle() -> None:
    """Flush dirty pages (the previous run's blob store) so that they are not written
    back during the next timed block."""
    gc.collect()
    if hasattr(os, "sync"):
        os.sync()


def one_round(pool: Path, run_dir: Path, seed: int, n: int, n_extra: int, k: int) -> dict[str, Any]:
    """floor, read+hash+decode+copy, visionloop cold, re-run unchanged, re-version +1%.

    Stores written in a round are deleted only after the last round: on this kind of VM,
    writing right after a large delete is markedly slower (freed memory and blocks are
    handed back and must be faulted in again), which would penalise whichever run comes
    after the delete."""
    folder = run_dir / "dataset"
    build_folder(pool, folder, seed, n)
    paths = image_paths(folder)
    warm_page_cache(paths)
    settle()
    out: dict[str, Any] = {"floor": floor(paths)}
    store = fresh(run_dir / f"content-floor-{k}")
    settle()
    out["content_floor"] = content_floor(paths, store)
    blob_root, cache_path = fresh(run_dir / f"blobs-{k}"), run_dir / f"facts-{k}.sqlite"
    cache_path.unlink(missing_ok=True)
    settle()
    cold = visionloop_version(folder, blob_root, cache_path)
    manifest_json = len(cold.pop("dataset").manifest.model_dump_json())
    assert cold["candidates"] == n and cold["decoded"] == n, cold
    settle()
    unchanged = visionloop_version(folder, blob_root, cache_path)
    unchanged.pop("dataset")
    assert unchanged["version_id"] == cold["version_id"] and unchanged["decoded"] == 0, unchanged
    link_images(pool, folder, range(n, n + n_extra))
    write_labels(folder, seed, range(n + n_extra))
    warm_page_cache(image_paths(folder))
    settle()
    added = visionloop_version(folder, blob_root, cache_path)
    added.pop("dataset")
    assert added["candidates"] == n + n_extra and added["decoded"] == n_extra, added
    assert added["version_id"] != cold["version_id"]
    out.update(cold=cold, unchanged=unchanged, added=added, manifest_json_bytes=manifest_json)
    return out


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the folder (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "visionloop-bench-data-qa",
        help="where generated images are cached and the runs happen",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (floor, cold, unchanged, +1%%): times are the fastest round, ratios the median "
        "of the per-round ratios (default 3)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the memory subprocesses (no timed rounds); results go to data_qa-n<N>-memory.json",
    )
    parser.add_argument("--child-memory", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    parser.add_argument("--child-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_memory:
        print(json.dumps(memory_child(args.child_folder, args.child_scratch, args.child_memory)))
        return

    n, seed = args.images, args.seed
    n_extra = max(1, n // 100)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    small = max(1, n // 10)
    pool = ensure_pool(workdir, seed, n + n_extra)
    run_dir = workdir / f"run-n{n}"
    load_before = loadavg()

    # ---- the data set: N images (hard links into the pool) and its labels
    shutil.rmtree(run_dir, ignore_errors=True)
    labeled = build_folder(pool, run_dir / "dataset", seed, n)
    total_bytes = sum(p.stat().st_size for p in image_paths(run_dir / "dataset"))
    print(
        f"data set: {n} images ({mib(total_bytes)}, mean {total_bytes / n / 1024:.1f} KiB), "
        f"{labeled} CSV rows; {args.repeat} round(s); load average {load_before}"
    )

    rounds = []
    for k in range(0 if args.memory_only else args.repeat):
        r = one_round(pool, run_dir, seed, n, n_extra, k)
        rounds.append(r)
        print(
            f"round {k + 1}: floor {r['floor']['wall_s']:.2f} s, read+hash+decode+copy "
            f"{r['content_floor']['wall_s']:.2f} s, visionloop cold {r['cold']['wall_s']:.2f} s "
            f"({', '.join(f'{p} {v:.2f}' for p, v in r['cold']['phases_s'].items())}), "
            f"unchanged {r['unchanged']['wall_s']:.2f} s, +{n_extra} images {r['added']['wall_s']:.2f} s",
            flush=True,
        )
    shutil.rmtree(run_dir, ignore_errors=True)

    def best(name: str, clock: str = "wall_s") -> float:
        return min(r[name][clock] for r in rounds)

    def fastest(name: str) -> dict[str, Any]:
        return min((r[name] for r in rounds), key=lambda x: x["wall_s"])

    # ---- memory, each size in its own process
    memory: dict[str, Any] = {}
    if not args.no_memory:
        for size in (small, n):
            mem_folder = workdir / f"mem-n{size}" / "dataset"
            build_folder(pool, mem_folder, seed, size)
            warm_page_cache(image_paths(mem_folder))
            settle()
            rss = run_memory_child(mem_folder, workdir / f"mem-n{size}" / "scratch", "rss")
            heap = run_memory_child(mem_folder, workdir / f"mem-n{size}" / "scratch", "tracemalloc")
            memory[str(size)] = {
                **rss,
                **{k: v for k, v in heap.items() if k not in ("mode", "seconds")},
                "seconds_tracemalloc": heap["seconds"],
            }
            print(
                f"memory at {size} images: RSS growth {mib(rss['rss_growth_bytes'])}, "
                f"heap peak {mib(heap['heap_peak_bytes'])}, manifest retained "
                f"{mib(heap['manifest_retained_bytes'])}, manifest JSON {mib(heap['manifest_json_bytes'])}"
            )

    # ---- figures: times are the fastest round of each; ratios are the median over rounds
    # of the ratio within a round (robust when other processes share the machine)
    figures: dict[str, Any] = {"images": n, "mean_file_kib": round(total_bytes / n / 1024, 1)}
    met: dict[str, bool] = {}
    if rounds:
        floor_s, cfloor_s, cold_s = best("floor"), best("content_floor"), best("cold")
        unchanged_s, added_s = best("unchanged"), best("added")

        def per_round(num: str, den: str, clock: str = "wall_s") -> float:
            return statistics.median(r[num][clock] / r[den][clock] for r in rounds)

        ratio = per_round("cold", "floor")
        reversion = per_round("added", "cold")
        figures |= {
            "rounds": args.repeat,
            "floor_s": floor_s,
            "floor_cpu_s": best("floor", "cpu_s"),
            "floor_images_per_s": n / floor_s,
            "content_floor_s": cfloor_s,
            "content_floor_cpu_s": best("content_floor", "cpu_s"),
            "content_floor_images_per_s": n / cfloor_s,
            "visionloop_cold_s": cold_s,
            "visionloop_cold_cpu_s": best("cold", "cpu_s"),
            "visionloop_cold_images_per_s": n / cold_s,
            "visionloop_cold_phases_s": fastest("cold")["phases_s"],
            "visionloop_cold_blob_writes_s": fastest("cold")["qa_blob_writes_s"],
            "visionloop_over_floor": ratio,
            "visionloop_over_floor_cpu": per_round("cold", "floor", "cpu_s"),
            "visionloop_over_floor_rounds": [r["cold"]["wall_s"] / r["floor"]["wall_s"] for r in rounds],
            "visionloop_over_content_floor": per_round("cold", "content_floor"),
            "unchanged_rerun_s": unchanged_s,
            "unchanged_rerun_cpu_s": best("unchanged", "cpu_s"),
            "unchanged_rerun_fraction": per_round("unchanged", "cold"),
            "unchanged_rerun_phases_s": fastest("unchanged")["phases_s"],
            "added_images": n_extra,
            "reversion_s": added_s,
            "reversion_cpu_s": best("added", "cpu_s"),
            "reversion_fraction": reversion,
            "reversion_fraction_cpu": per_round("added", "cold", "cpu_s"),
            "reversion_fraction_rounds": [r["added"]["wall_s"] / r["cold"]["wall_s"] for r in rounds],
            "reversion_phases_s": fastest("added")["phases_s"],
            "manifest_json_bytes": rounds[0]["manifest_json_bytes"],
        }
        met["visionloop_over_floor"] = ratio <= TARGETS["visionloop_over_floor"]
        met["reversion_fraction"] = reversion < TARGETS["reversion_fraction"]
    figures |= {"load_average_before": load_before, "load_average_after": loadavg()}
    if memory:
        lo, hi = memory[str(small)], memory[str(n)]
        figures["memory"] = memory
        figures["memory_sizes"] = [small, n]
        figures["rss_growth_ratio"] = hi["rss_growth_bytes"] / max(lo["rss_growth_bytes"], 1)
        figures["rss_peak_ratio"] = hi["rss_peak_bytes"] / lo["rss_peak_bytes"]
        figures["heap_peak_ratio"] = hi["heap_peak_bytes"] / max(lo["heap_peak_bytes"], 1)

        def beyond(m: dict[str, Any], key: str) -> int:
            return int(m[key] - m["manifest_retained_bytes"])

        figures["rss_growth_beyond_manifest_bytes"] = {
            str(small): beyond(lo, "rss_growth_bytes"),
            str(n): beyond(hi, "rss_growth_bytes"),
        }
        figures["heap_peak_beyond_manifest_bytes"] = {
            str(small): beyond(lo, "heap_peak_bytes"),
            str(n): beyond(hi, "heap_peak_bytes"),
        }
        figures["heap_peak_beyond_manifest_ratio"] = beyond(hi, "heap_peak_bytes") / max(
            beyond(lo, "heap_peak_bytes"), 1
        )
        # the target figure: peak RSS growth of the run, less what the manifest itself keeps
        figures["memory_ratio"] = beyond(hi, "rss_growth_bytes") / max(beyond(lo, "rss_growth_bytes"), 1)
        met["memory_ratio"] = figures["memory_ratio"] <= TARGETS["memory_ratio"]

    for r in rounds:
        for key in ("cold", "unchanged", "added"):
            r[key].pop("dataset", None)
    results = {
        "benchmark": "data_qa",
        "command": " ".join([".venv/bin/python benchmarks/data_qa.py", *sys.argv[1:]]),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
        "targets": TARGETS,
        "met": met,
        "rounds": rounds,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"data_qa-n{n}{'-memory' if args.memory_only else ''}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(figures, met)
    print(f"\nresults: {out.relative_to(ROOT)}")


def print_table(f: dict[str, Any], met: dict[str, bool]) -> None:
    n = f["images"]

    def ok(key: str) -> str:
        return "" if key not in met else ("  [met]" if met[key] else "  [MISSED]")

    def timing(key: str) -> str:
        return f"{f[key + '_s']:6.2f} s  (CPU {f[key + '_cpu_s']:6.2f} s)"

    rows: list[tuple[str, str]] = [
        (
            "images (450x300 JPEG)",
            f"{n:,} (mean {f['mean_file_kib']} KiB)"
            + (
                f"; times: fastest of {f['rounds']} round(s), ratios: median of per-round ratios"
                if "rounds" in f
                else "; memory only"
            ),
        )
    ]
    if "floor_s" in f:
        rows += [
            ("floor: Pillow open+load", f"{timing('floor')}  {f['floor_images_per_s']:,.0f} img/s"),
            (
                "read+sha256+decode+copy (context)",
                f"{timing('content_floor')}  {f['content_floor_images_per_s']:,.0f} img/s",
            ),
            (
                "visionloop cold (ingest+QA+split+version)",
                f"{timing('visionloop_cold')}  {f['visionloop_cold_images_per_s']:,.0f} img/s",
            ),
            (
                "  phases (s)",
                ", ".join(f"{k} {v:.2f}" for k, v in f["visionloop_cold_phases_s"].items())
                + f" (QA includes {f['visionloop_cold_blob_writes_s']:.2f} writing blobs)",
            ),
            (
                "visionloop / floor",
                f"{f['visionloop_over_floor']:.2f}x (CPU {f['visionloop_over_floor_cpu']:.2f}x; "
                f"target <= 1.5x){ok('visionloop_over_floor')}",
            ),
            ("visionloop / read+hash+decode+copy", f"{f['visionloop_over_content_floor']:.2f}x"),
            (
                "re-run, nothing changed",
                f"{timing('unchanged_rerun')}  = {f['unchanged_rerun_fraction']:.1%} of cold",
            ),
            ("  phases (s)", ", ".join(f"{k} {v:.2f}" for k, v in f["unchanged_rerun_phases_s"].items())),
            (
                f"re-version after +{f['added_images']} images (1%)",
                f"{timing('reversion')}  = {f['reversion_fraction']:.1%} of cold "
                f"(CPU {f['reversion_fraction_cpu']:.1%}; target < 10%){ok('reversion_fraction')}",
            ),
            ("  phases (s)", ", ".join(f"{k} {v:.2f}" for k, v in f["reversion_phases_s"].items())),
        ]
    if "memory" in f:
        lo, hi = (str(s) for s in f["memory_sizes"])
        mem = f["memory"]
        for size in (lo, hi):
            m = mem[size]
            rows.append(
                (
                    f"memory at {int(size):,} images",
                    f"RSS peak {mib(m['rss_peak_bytes'])} (growth {mib(m['rss_growth_bytes'])}), "
                    f"heap peak {mib(m['heap_peak_bytes'])}",
                )
            )
            rows.append(
                (
                    "  heap peak by phase",
                    ", ".join(f"{k} {mib(v)}" for k, v in m["heap_peak_by_phase_bytes"].items()),
                )
            )
            rows.append(
                (
                    "  manifest",
                    f"retained {mib(m['manifest_retained_bytes'])}, JSON {mib(m['manifest_json_bytes'])}",
                )
            )
        rows += [
            (f"RSS growth ratio {hi}/{lo}", f"{f['rss_growth_ratio']:.2f}x"),
            (f"heap peak ratio {hi}/{lo}", f"{f['heap_peak_ratio']:.2f}x"),
            (f"heap peak beyond manifest {hi}/{lo}", f"{f['heap_peak_beyond_manifest_ratio']:.2f}x"),
            (
                f"RSS growth beyond manifest {hi}/{lo}",
                f"{f['memory_ratio']:.2f}x (target <= 1.5x){ok('memory_ratio')}",
            ),
        ]
    rows.append(("load average before / after", f"{f['load_average_before']} / {f['load_average_after']}"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
