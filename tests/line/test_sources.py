"""Sources: watched folder (settle time), file list, video file, camera errors, --source parsing."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.line.genicam import GenICamSource
from defectscope.line.sources import (
    CameraSource,
    FileListSource,
    FolderWatchSource,
    SourceError,
    VideoFileSource,
    parse_source,
)


def test_folder_watch_waits_until_a_slowly_written_file_is_complete(tmp_path, png):
    encoded = png(tmp_path / "src.png", 200).read_bytes()
    watched = tmp_path / "in"
    watched.mkdir()
    source = FolderWatchSource(watched, settle_s=1.0, poll_s=0.05)
    target = watched / "part.png"
    with open(target, "wb") as handle:  # first half, a pause shorter than settle_s, the rest
        handle.write(encoded[: len(encoded) // 2])
        handle.flush()
        assert source.next_frame(timeout=0.3) is None  # too fresh: not read half-written
        handle.write(encoded[len(encoded) // 2:])
    frame = source.next_frame(timeout=5.0)
    assert frame is not None and frame.error is None, frame
    assert frame.image.shape == (8, 10, 3) and frame.image[0, 0, 0] == 200
    assert frame.data == encoded and frame.path == str(target)
    assert frame.frame_id.startswith("part-")
    assert source.next_frame(timeout=0.5) is None  # each file once


def test_folder_watch_skips_existing_files_and_stops_on_request(tmp_path, png):
    png(tmp_path / "old.png", 10)
    source = FolderWatchSource(tmp_path, settle_s=0.0, poll_s=0.05)
    frames = []
    thread = threading.Thread(target=lambda: frames.extend(source))
    thread.start()
    png(tmp_path / "new.png", 20)
    deadline = time.monotonic() + 3
    while not frames and time.monotonic() < deadline:
        time.sleep(0.02)
    source.stop()
    thread.join(2)
    assert not thread.is_alive()
    assert [f.path.rsplit("/", 1)[-1] for f in frames] == ["new.png"]


def test_file_list_and_glob_give_each_file_once_in_order(tmp_path, png):
    for i in range(3):
        png(tmp_path / f"{i}.png", 50 * i)
    frames = list(FileListSource(str(tmp_path / "*.png")))
    assert [f.image[0, 0, 0] for f in frames] == [0, 50, 100]
    assert len({f.frame_id for f in frames}) == 3
    assert len(list(FileListSource([tmp_path / "2.png"]))) == 1
    with pytest.raises(SourceError, match="no files match"):
        FileListSource(str(tmp_path / "*.jpg"))


def test_unreadable_files_give_frames_with_errors_not_exceptions(tmp_path, png):
    good = png(tmp_path / "a.png", 1)
    broken = tmp_path / "b.png"
    broken.write_bytes(good.read_bytes()[:40])  # truncated
    empty = tmp_path / "c.png"
    empty.write_bytes(b"")
    frames = list(FileListSource([good, broken, empty, tmp_path / "missing.png"]))
    assert frames[0].error is None
    for frame in frames[1:]:
        assert frame.image is None and frame.error and frame.path in frame.error


def test_video_file_frames_and_every_n(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, dtype=np.uint8))
    writer.release()
    frames = list(VideoFileSource(path))
    assert len(frames) == 6 and frames[0].image.shape == (24, 32, 3)
    assert abs(int(frames[3].image.mean()) - 120) < 10
    every_other = list(VideoFileSource(path, every_n=2))
    assert len(every_other) == 3
    assert abs(int(every_other[1].image.mean()) - 80) < 10
    with pytest.raises(SourceError, match="no such video"):
        VideoFileSource(tmp_path / "nope.avi")
    (tmp_path / "fake.avi").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        VideoFileSource(tmp_path / "fake.avi")


def test_parse_source_schemes_and_errors(tmp_path, png):
    png(tmp_path / "a.png", 1)
    assert isinstance(parse_source(f"folder:{tmp_path}"), FolderWatchSource)
    assert isinstance(parse_source(f"glob:{tmp_path}/*.png"), FileListSource)
    for bad in ("ftp://x", "webcam:0", "nothing", "", "folder:"):
        with pytest.raises(ConfigError):
            parse_source(bad)
    with pytest.raises(ConfigError, match="camera index"):
        parse_source("camera:front")
    with pytest.raises(SourceError, match="no such folder"):
        parse_source(f"folder:{tmp_path / 'missing'}")


def test_camera_that_cannot_open_says_so(tmp_path):
    with pytest.raises(SourceError, match="cannot open"):
        CameraSource(str(tmp_path / "no-such-device"))


def test_genicam_without_harvesters_names_the_install(tmp_path):
    try:
        import harvesters  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="pip install harvesters"):
            GenICamSource(tmp_path / "producer.cti")
    else:
        pytest.skip("harvesters is installed")


def test_an_empty_file_is_read_and_refused_not_waited_on_for_ever(tmp_path, png, monkeypatch):
    png(tmp_path / "a.png", 30)
    (tmp_path / "b.png").write_bytes(b"")
    batch = FolderWatchSource(tmp_path, settle_s=0.0, poll_s=0.01, include_existing=True,
                              once=True)
    frames = [batch.next_frame(timeout=5.0) for _ in range(3)]
    assert frames[0].image is not None
    assert frames[1].image is None and "empty" in frames[1].error
    assert frames[2] is None  # the batch ended
    watch = FolderWatchSource(tmp_path, settle_s=0.0, poll_s=0.01, include_existing=True)
    monkeypatch.setattr(FolderWatchSource, "EMPTY_SETTLE_S", 0.3)
    assert watch.next_frame(timeout=2.0).image is not None
    started = time.monotonic()
    empty = watch.next_frame(timeout=5.0)  # waits as if still being written, then reads
    assert empty is not None and empty.image is None and time.monotonic() - started >= 0.25
