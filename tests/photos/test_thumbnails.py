"""Thumbnails: content-addressed, upright, bounded, safe to delete; made while indexing from the decoded image."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from photoindex.config import Config
from photoindex.errors import ImageError
from photoindex.indexing.indexer import run_index
from photoindex.photos.scanner import content_hash
from photoindex.photos.thumbnails import ThumbnailStore, thumbnail_jpeg, thumbnail_store
from photoindex.testing import make_photo

RED = (200, 30, 30)


def test_a_thumbnail_is_upright_small_and_keyed_by_content(tmp_path: Path) -> None:
    # EXIF orientation 6: stored landscape 400x300, shown portrait 300x400.
    photo = make_photo(tmp_path / "p.jpg", RED, size=(400, 300), exif={274: 6})
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(photo.read_bytes())
    store = ThumbnailStore(tmp_path / "thumbs", size=128)
    digest = content_hash(photo)
    path = store.ensure(digest, photo, max_pixels=10**8)
    assert path == store.path_for(content_hash(copy))  # copies share one
    assert path.relative_to(tmp_path / "thumbs").parts == ("128", digest[:2], f"{digest}.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (96, 128)
        assert not im.getexif()  # upright pixels, no orientation left to apply
    assert store.ensure(digest, photo, max_pixels=10**8) == path


def test_small_photos_are_not_enlarged_and_transparency_goes_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (40, 20), (0, 0, 255, 0))
    data = thumbnail_jpeg(im, 320)
    out = tmp_path / "t.jpg"
    out.write_bytes(data)
    with Image.open(out) as t:
        assert t.size == (40, 20)
        r, g, b = t.convert("RGB").getpixel((20, 10))
        assert min(r, g, b) > 240


def test_a_bomb_or_a_broken_file_is_an_image_error(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "p.png", RED, size=(300, 300))
    store = ThumbnailStore(tmp_path / "thumbs")
    with pytest.raises(ImageError) as err:
        store.ensure("ab" * 16, photo, max_pixels=10_000)
    assert err.value.reason == "too-large"
    broken = tmp_path / "b.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\0" * 50)
    with pytest.raises(ImageError):
        store.ensure("cd" * 16, broken, max_pixels=10**8)
    assert store.usage() == (0, 0)


def test_names_come_from_hashes_only(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    for bad in ("../../etc/passwd", "", "ABCDEF", "12/34"):
        with pytest.raises(ValueError):
            store.path_for(bad)


def test_the_cache_is_bounded_oldest_first(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs", max_bytes=10_000)
    paths = []
    for i in range(8):
        paths.append(store.put(f"{i:032x}", b"x" * 2000))
        os.utime(paths[-1], (time.time() - 100 + i, time.time() - 100 + i))  # written in this order
    files, total = store.usage()
    assert total <= 10_000
    assert not paths[0].exists() and paths[-1].exists()  # the oldest went first
    assert files == sum(p.exists() for p in paths)


def test_deleting_the_cache_is_safe(tmp_path: Path) -> None:
    import shutil

    photo = make_photo(tmp_path / "p.jpg", RED)
    store = ThumbnailStore(tmp_path / "thumbs")
    digest = content_hash(photo)
    first = store.ensure(digest, photo, max_pixels=10**8).read_bytes()
    shutil.rmtree(tmp_path / "thumbs")
    assert store.get(digest) is None
    assert store.ensure(digest, photo, max_pixels=10**8).read_bytes() == first


def test_indexing_makes_the_thumbnails(config: Config, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"{i}.jpg", RED, size=(640, 480), seed=i)
    make_photo(photos / "turned.jpg", RED, size=(640, 480), seed=9, exif={274: 8})
    report = run_index(config, [photos])
    assert report.added == 4
    store = thumbnail_store(config)
    for path in sorted(photos.iterdir()):
        thumb = store.get(content_hash(path))
        assert thumb is not None, path
        with Image.open(thumb) as im:
            expected = (240, 320) if path.name == "turned.jpg" else (320, 240)
            assert im.size == expected


def test_thumbnails_while_indexing_can_be_off(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photoindex.config import load_config

    monkeypatch.setenv("PHOTOINDEX_THUMBNAILS_WHILE_INDEXING", "false")
    cfg = load_config()
    photos = tmp_path / "photos"
    make_photo(photos / "a.jpg", RED)
    run_index(cfg, [photos])
    assert thumbnail_store(cfg).usage() == (0, 0)


def test_decode_workers_write_the_thumbnails_and_say_how_many_bytes(tmp_path: Path) -> None:
    from photoindex.inference.bundle import ImageSpec
    from photoindex.photos.decodepool import DecodeJob, DecodePool

    paths = [make_photo(tmp_path / f"{i}.jpg", RED, size=(640, 480), seed=i) for i in range(3)]
    store = ThumbnailStore(tmp_path / "thumbs", size=160, max_bytes=10**6)
    pool = DecodePool(ImageSpec(size=64), workers=2, max_pixels=10**8, thumbnails=store)
    first = list(pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths)))
    for r in first:
        thumb = store.get(r.content_hash or "")
        assert thumb is not None  # written by the worker
        assert r.thumbnail_bytes == thumb.stat().st_size > 0
        with Image.open(thumb) as im:
            assert im.size == (160, 120)
    again = list(pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths)))
    assert [r.thumbnail_bytes for r in again] == [0, 0, 0]  # already cached: nothing written twice


def test_a_thumbnail_folder_that_cannot_be_written_is_said_once(config: Config, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"{i}.jpg", RED, size=(640, 480), seed=i)
    blocked = thumbnail_store(config).folder / str(thumbnail_store(config).size)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_bytes(b"")  # a file where the folder should be: no thumbnail can be written
    report = run_index(config, [photos])
    assert report.added == 3 and report.failed == 0
    said = [w for w in report.warnings if "cannot write thumbnails" in w]
    assert len(said) == 1 and str(thumbnail_store(config).folder) in said[0]
